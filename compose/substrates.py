"""Pick the launcher for a substrate: the one place that knows every :class:`Launcher`."""

from __future__ import annotations

from typing import Any

from compose.launcher import Launcher, LaunchError


def make_launcher(substrate: str, settings: Any) -> Launcher:
    """The launcher for ``local``, ``docker`` or ``kubernetes``; raises LaunchError with a sentence."""
    if substrate == "local":
        from compose.local import LocalLauncher

        return LocalLauncher(settings.devserver_host)
    if substrate == "docker":
        from compose.docker import DockerLauncher

        return DockerLauncher.from_settings(settings)
    if substrate == "kubernetes":
        from compose.kubernetes import KubernetesLauncher

        launcher: Launcher = KubernetesLauncher.from_settings(settings)
        return launcher
    raise LaunchError(f"Unknown substrate {substrate!r}; use local, docker or kubernetes.")
