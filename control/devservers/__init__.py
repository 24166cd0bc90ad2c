"""Develop servers in the control plane: their lifecycle rows and work items."""
