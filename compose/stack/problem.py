"""The one error of the embedded stack."""

from __future__ import annotations


class UpProblem(Exception):
    """The stack cannot start or stop; one sentence for the user."""
