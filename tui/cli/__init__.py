"""The `yard` command line (Typer), thin over control.client."""
