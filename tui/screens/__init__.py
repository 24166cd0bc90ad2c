"""Full screens pushed over the dashboard."""
