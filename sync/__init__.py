"""File and git state sync engine used by ``yard sync``."""
