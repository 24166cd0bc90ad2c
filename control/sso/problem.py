"""The one error of single sign-on: a code (the RFC's where there is one) and a sentence."""

from __future__ import annotations


class SsoProblem(Exception):
    """A sign-in that cannot go on. ``message`` never holds a token, a code or a client secret."""

    def __init__(self, code: str, message: str, status: int = 400, *, ended_session: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.ended_session = ended_session  # a session was revoked on the way: caches must forget it
