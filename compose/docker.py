"""The Docker launcher: runs and develop servers as containers on one Docker engine.

Every container is labelled ``devyard=1`` plus ``devyard.run=<id>`` or ``devyard.devserver=<id>``,
so orphans can be found and reaped, and runs as the agent's own uid/gid so files it writes on
the volume belong to the same user as everything else there. The folders a launch names
(``LaunchSpec.paths``: the run folder or workspace on the shared volume, the spool, the develop
server's state files) are bind-mounted at the same paths, so the agent's argv and environment
mean the same inside the container. A develop server therefore sees only its own workspace of
the volume, not other users'. Containers use the host network: the develop server binds
127.0.0.1 like a local one and the run worker reaches the control API at the URL the agent uses.

The engine's Python is not the agent's: ``argv[0] == sys.executable`` becomes the image's Python
(``Settings.docker_python``). Handles are container ids; the engine keeps them across agent
restarts, which is what re-adoption needs.
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
import sys
import time
from pathlib import Path
from typing import Any

from compose.launcher import LaunchError, LaunchSpec, LaunchState, LaunchStatus

LABEL = "devyard"
NANO = 1_000_000_000


class DockerUnavailable(LaunchError):
    """The Docker engine cannot be reached; one sentence for the user."""


def connect(base_url: str | None = None) -> Any:
    """A Docker client, or :class:`DockerUnavailable` with what to do."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
        client.ping()
    except DockerException as exc:
        where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise DockerUnavailable(f"Cannot reach the Docker engine at {where}; is dockerd running?") from exc
    return client


class EngineDown(Exception):
    """The engine did not answer (restarting, socket gone): nothing is known about the container."""


class DockerLauncher:
    substrate = "docker"
    bind_host = "127.0.0.1"
    devserver_port = 0  # the develop server binds an ephemeral port and reports it

    def endpoint(self, handle: str, port: int) -> str:
        return f"https://127.0.0.1:{port}"

    def __init__(self, client: Any, default_image: str, python: str) -> None:
        self.client = client
        self.default_image = default_image
        self.python = python
        self._present: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Any) -> DockerLauncher:
        return cls(connect(), settings.docker_image, settings.docker_python)

    # ------------------------------------------------------------------ start

    def _command(self, spec: LaunchSpec) -> list[str]:
        argv = [self.python if arg == sys.executable else arg for arg in spec.argv[:1]] + spec.argv[1:]
        if spec.log_path is None:
            return argv
        # Output to the log file like the local launcher; `exec` keeps the program as PID 1's child
        # replacement so signals reach it directly.
        return ["sh", "-c", 'exec "$0" "$@" >>"$DEVYARD_LAUNCH_LOG" 2>&1', *argv]

    def _run_kwargs(self, spec: LaunchSpec) -> dict[str, Any]:
        folders = {str(p) for p in (*spec.paths, spec.cwd) if p is not None}
        if spec.log_path is not None:
            folders.add(str(spec.log_path.parent))
        volumes = {folder: {"bind": folder, "mode": "rw"} for folder in sorted(folders)}
        env = dict(spec.env)
        if spec.log_path is not None:
            env["DEVYARD_LAUNCH_LOG"] = str(spec.log_path)
        # The image's own PATH and HOME; the agent's would point at host folders.
        for key in ("PATH", "HOME", "PYTHONPATH"):
            env.pop(key, None)
        kwargs: dict[str, Any] = {
            "command": self._command(spec),
            "detach": True,
            "environment": env,
            "labels": {LABEL: "1", **spec.labels},
            "name": f"{spec.name}-{int(time.time() * 1000) % 10**10}",
            "network_mode": "host",
            "user": f"{os.getuid()}:{os.getgid()}",
            "volumes": volumes,
            "working_dir": str(spec.cwd),
            "init": True,  # reaps the command's children, forwards signals
        }
        memory = spec.resources.get("memory_mb")
        if memory:
            kwargs["mem_limit"] = f"{int(memory)}m"
        cpus = spec.resources.get("cpus")
        if cpus:
            kwargs["nano_cpus"] = int(float(cpus) * NANO)
        return kwargs

    def start(self, spec: LaunchSpec) -> str:
        from docker.errors import APIError, DockerException, ImageNotFound
        from requests.exceptions import RequestException

        image = spec.image or self.default_image
        for folder in spec.paths:
            Path(folder).mkdir(parents=True, exist_ok=True)
        if spec.log_path is not None:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Never pull implicitly (containers.run would): images are built or loaded on purpose,
            # and a missing one should say so rather than time out on a registry.
            if image not in self._present:
                self.client.images.get(image)
                self._present.add(image)
            container = self.client.containers.run(image, **self._run_kwargs(spec))
        except ImageNotFound as exc:
            self._present.discard(image)
            raise LaunchError(
                f"Docker image {image} is not on this host; build or load it (`docker images` lists what is there)."
            ) from exc
        except APIError as exc:
            raise LaunchError(f"Docker refused to start {spec.name}: {exc.explanation or exc}.") from exc
        except (DockerException, RequestException) as exc:
            raise LaunchError(
                f"The Docker engine did not answer while starting {spec.name}; is dockerd running?"
            ) from exc
        return str(container.id)

    # ------------------------------------------------------------------ control

    def _container(self, handle: str) -> Any:
        """The container, None when it is gone; raises EngineDown when the engine does not answer."""
        from docker.errors import DockerException, NotFound
        from requests.exceptions import RequestException

        try:
            return self.client.containers.get(handle)
        except NotFound:
            return None
        except (DockerException, RequestException) as exc:
            raise EngineDown(str(exc)) from exc

    def signal(self, handle: str, signum: int) -> bool:
        from docker.errors import APIError

        try:
            container = self._container(handle)
        except EngineDown:
            return False
        if container is None or container.status != "running":
            return False
        try:
            container.kill(signal=signals.Signals(signum).name)
        except APIError:
            return False
        return True

    def stop(self, handle: str, grace_s: float = 10.0) -> None:
        from docker.errors import APIError

        try:
            container = self._container(handle)
        except EngineDown:
            return
        if container is None:
            return
        with contextlib.suppress(APIError):
            container.stop(timeout=max(1, round(grace_s)))
            container.remove(force=True)

    def status(self, handle: str) -> LaunchStatus:
        from docker.errors import APIError, DockerException
        from requests.exceptions import RequestException

        try:
            container = self._container(handle)
        except EngineDown:
            # Not "exited": the container may be fine and the engine back in a moment.
            return LaunchStatus(LaunchState.running, reason="engine unreachable")
        if container is None:
            return LaunchStatus(LaunchState.unknown)
        if container.status in ("running", "created", "restarting"):
            return LaunchStatus(LaunchState.running)
        state = container.attrs.get("State", {})
        code = state.get("ExitCode")
        reason = "OOMKilled" if state.get("OOMKilled") else (state.get("Error") or None)
        # An ended container has told us what we need; remove it so none pile up (if the engine
        # is going away right now, the reaper gets it later).
        with contextlib.suppress(APIError, DockerException, RequestException):
            container.remove(force=True)
        return LaunchStatus(LaunchState.exited, code, reason)

    # ------------------------------------------------------------------ orphans

    def labelled(self) -> list[dict[str, Any]]:
        """Every devyard container on this engine: id, labels, state."""
        containers = self.client.containers.list(all=True, filters={"label": f"{LABEL}=1"})
        return [{"id": c.id, "labels": dict(c.labels), "status": c.status} for c in containers]

    def reap(self, keep: set[str]) -> list[str]:
        """Remove ended devyard containers not in ``keep``; returns their ids."""
        from docker.errors import APIError

        removed = []
        for info in self.labelled():
            if info["status"] in ("exited", "dead") and info["id"] not in keep:
                try:
                    self.client.containers.get(info["id"]).remove(force=True)
                    removed.append(info["id"])
                except APIError:
                    pass
        return removed
