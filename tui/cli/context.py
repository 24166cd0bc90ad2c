"""Shared CLI state: which profile to use, and a client built from it."""

from __future__ import annotations

from dataclasses import dataclass

from control.client import ControlClient
from tui.cli.project_name import default_project

__all__ = ["CliState", "default_project", "state"]


@dataclass
class CliState:
    profile: str | None = None

    def client(self) -> ControlClient:
        return ControlClient.from_profile(self.profile)


state = CliState()
