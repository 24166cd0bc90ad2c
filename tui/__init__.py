"""The terminal front end: the Textual app and the Typer CLI, both thin over control.client."""
