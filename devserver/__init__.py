"""The develop server process (workspace files, exec, PTY, git) and its lifecycle."""
