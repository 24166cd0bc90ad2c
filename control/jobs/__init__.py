"""Jobs: saved run definitions of a project, their triggers, and the runs they start."""
