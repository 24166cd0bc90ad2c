"""The messages that cross a process boundary, in one place both sides import.

Resources, work items, event payloads and error bodies of the control API are pydantic models
(``resources``, ``runs``, ``schedules``, ``devservers``, ``work``, ``events``, ``errors``); the
develop server's byte protocols (``frames``, ``batch``, ``manifest``) are plain standard-library
modules so the develop server and the fast CLI paths import them without pydantic.

Nothing here imports FastAPI or SQLModel (a test checks it), and this ``__init__`` imports
nothing, so importing one protocol module never pays for the models.
"""
