"""The agent: claims work from the control API and runs it on one substrate.

It only makes outbound calls (the hybrid boundary): register, long-poll ``/agent/work``, report
each launch, heartbeat the runs it can still see. A run item becomes a run worker started
through the :class:`~compose.launcher.Launcher`; a cancel item becomes SIGTERM to that worker,
which stops the command gracefully and reports the run as cancelled. Stopping the agent never
stops running work: workers live in their own sessions and are re-adopted by handle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose.devservers import DevServerKeeper
from compose.launcher import Launcher, LaunchError, LaunchSpec, LaunchState, command_home
from compose.substrates import make_launcher
from control.client import ControlClient, DevyardError
from control.datadir import DataDir
from control.settings import Settings
from control.trust import WORKER_ENV as TRUST_ENV
from control.trust import TrustProblem
from control.wire.work import (
    CancelWork,
    ClaimedWork,
    DevServerStartWork,
    DevServerStopWork,
    RunWork,
    UnknownWork,
)
from runner.checkout import check_out
from runner.gitcommand import CheckoutFailed
from runner.orphans import stop_orphaned_command
from runner.scratch import remove_run_folder

log = logging.getLogger("devyard.agent")

HEARTBEAT_S = 2.0
STOP_WAIT_S = 6.0  # at stop, for the clean-up of ended runs still under way
BACKOFF_MAX_S = 10.0
WORKER_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SHELL",
    "TERM",
    "PYTHONPATH",
)


@dataclass
class AgentConfig:
    name: str
    queue: str
    api_url: str
    volume: Path
    spool: Path
    poll_wait_s: float = 25.0
    # Agent-local files of develop servers (secret hand-over, ready file, server log);
    # default: ``devservers`` next to the spool.
    devserver_state: Path | None = None


@dataclass
class Agent:
    config: AgentConfig
    client: ControlClient
    launcher: Launcher
    stop_event: threading.Event = field(default_factory=threading.Event)
    runs: dict[int, str] = field(default_factory=dict)
    run_folders: dict[int, Path] = field(default_factory=dict)
    preparing: set[int] = field(default_factory=set)
    """Runs whose code is being checked out (no worker yet)."""
    cancelled_early: set[int] = field(default_factory=set)
    """Runs cancelled while their code was being checked out."""
    _background: list[threading.Thread] = field(default_factory=list)
    _background_lock: threading.Lock = field(default_factory=threading.Lock)
    agent_id: int | None = None
    devservers: DevServerKeeper = field(init=False)

    def __post_init__(self) -> None:
        state_dir = self.config.devserver_state or self.config.spool.parent / "devservers"
        self.devservers = DevServerKeeper(self.client, self.launcher, self.config.volume, state_dir, self.stop_event)

    def register(self) -> int:
        info = self.client.register_agent(
            self.config.name, queue=self.config.queue, substrate=self.launcher.substrate, hostname=socket.gethostname()
        )
        self.agent_id = info.id
        self.devservers.adopt(self.agent_id)
        reap = getattr(self.launcher, "reap", None)
        if reap is not None:
            # Containers that ended while no agent watched them: nothing left to adopt.
            removed = reap(set())
            if removed:
                log.info("removed %d ended devyard containers", len(removed))
        return self.agent_id

    def serve(self) -> None:
        """Claim and launch work until :attr:`stop_event` is set; survives API outages."""
        delay = 0.2
        beat = threading.Thread(target=self._heartbeats, name="agent-heartbeat", daemon=True)
        while not self.stop_event.is_set():
            try:
                if self.agent_id is None:
                    self.register()
                    log.info("agent %s registered as %s", self.config.name, self.agent_id)
                    if not beat.is_alive():
                        beat.start()
                assert self.agent_id is not None
                items = self.client.claim_work(self.agent_id, wait_s=self.config.poll_wait_s).items
                delay = 0.2
            except DevyardError as exc:
                if self.stop_event.is_set():
                    break  # the API is stopping with us (Ctrl-C on `yard up`): not a problem to report
                log.warning("agent cannot reach the control API: %s", exc)
                self.stop_event.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            for item in items:
                self.handle(item)

    def handle(self, item: ClaimedWork) -> None:
        match item:
            case RunWork():
                self._launch_run(item)
            case CancelWork():
                self._cancel(item)
            case DevServerStartWork():
                self.devservers.start_item(item, self._report)
            case DevServerStopWork():
                self.devservers.stop_item(item, self._report)
            case UnknownWork():
                self._report(item.id, error=f"This agent does not know work of kind {item.kind!r}.")

    def _launch_run(self, item: RunWork) -> None:
        spec = item.run
        if spec.code is not None and spec.code.source == "repository" and not spec.workspace:
            # A checkout can take a while (a first clone): in a thread of its own, so claiming,
            # cancelling and other launches go on meanwhile.
            self.preparing.add(spec.id)
            self._in_background(f"run-{spec.id}-checkout", self._check_out_and_launch, item)
            return
        self._start_worker(item)

    def _check_out_and_launch(self, item: RunWork) -> None:
        spec = item.run
        assert spec.code is not None
        run_dir = self.config.volume / f"runs/{spec.id}"
        scratch = self.config.spool / str(spec.id) / "checkout"
        try:
            done = check_out(spec.code, spec.env, self.config.volume, run_dir, scratch)
        except CheckoutFailed as exc:
            self.preparing.discard(spec.id)
            self.cancelled_early.discard(spec.id)
            remove_run_folder(run_dir)
            self._report(item.id, error=str(exc))
            return
        log.info("run %s: checked out %s in %.2f s", spec.id, done.commit[:12], done.seconds)
        self.preparing.discard(spec.id)
        if spec.id in self.cancelled_early:
            self.cancelled_early.discard(spec.id)
            remove_run_folder(run_dir)
            self._report(
                item.id, error=f"Run {spec.id} was cancelled before its command started.", code_commit=done.commit
            )
            return
        extra = {"DEVYARD_GIT_COMMIT": done.commit, "DEVYARD_GIT_REF": spec.code.ref or done.commit}
        self._start_worker(
            item.model_copy(update={"run": spec.model_copy(update={"env": {**spec.env, **extra}})}), done.commit
        )

    def _start_worker(self, item: RunWork, code_commit: str | None = None) -> None:
        spec = item.run
        run_id = spec.id
        # Runs started from a develop server run in that user's workspace; others get a folder
        # of their own (with their checkout, if any), removed when the run is over (by its
        # worker, or here if it was killed).
        own_folder = not spec.workspace
        run_dir = self.config.volume / (spec.workspace or f"runs/{run_id}")
        # The API only accepts a relative cwd without "..": the worker checks it, after symlinks,
        # against code_folder (a link in the workspace may still point elsewhere). An absolute cwd
        # is a local-tree run (only the embedded stack's admin can create one): its tree is its
        # code folder, and only a local agent, on that machine, may run it.
        local_tree = Path(spec.cwd) if spec.cwd and spec.cwd.startswith("/") else None
        if local_tree is not None and self.launcher.substrate != "local":
            self._report(
                item.id,
                error=f"Run {run_id} is meant for a folder of the machine that started it; only a local agent runs it.",
            )
            return
        cwd = local_tree or run_dir / (spec.cwd or "")
        code_folder = local_tree or run_dir
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            spool_dir = self.config.spool / str(run_id)
            spool_dir.mkdir(parents=True, exist_ok=True)
            spec_file = spool_dir / "spec.json"
            fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds secrets
            with os.fdopen(fd, "w") as spec_out:
                json.dump(
                    {
                        **spec.model_dump(mode="json"),
                        "cwd": str(cwd),
                        "code_folder": str(code_folder),
                        "spool_dir": str(spool_dir),
                        "run_folder": str(run_dir) if own_folder else None,
                    },
                    spec_out,
                )
            env = {k: v for k, v in os.environ.items() if k in WORKER_ENV}
            env["HOME"] = str(command_home(self.config.volume))
            env["DEVYARD_WORKER_URL"] = self.config.api_url
            env["DEVYARD_WORKER_TOKEN"] = item.worker_token or ""
            env[TRUST_ENV] = self.client.trust.to_json()  # the worker trusts what this agent trusts
            launch = LaunchSpec(
                name=f"devyard-run-{run_id}",
                argv=[sys.executable, "-m", "runner.worker", "--spec", str(spec_file)],
                env=env,
                cwd=run_dir,
                labels={"devyard.run": str(run_id)},
                resources=spec.resources,
                image=spec.image,
                paths=(run_dir, spool_dir),
            )
            handle = self.launcher.start(launch)
        except (LaunchError, OSError, TrustProblem) as exc:
            if own_folder:
                if code_commit is not None:
                    remove_run_folder(run_dir)  # holds the checkout, and nothing else yet
                else:  # only if still empty: the launch may have got further than it says
                    with contextlib.suppress(OSError):
                        run_dir.rmdir()
            self._report(item.id, error=str(exc), code_commit=code_commit)
            return
        if own_folder:  # first: the heartbeat may see the worker end as soon as it is in runs
            self.run_folders[run_id] = run_dir
        self.runs[run_id] = handle
        self._report(item.id, handle=handle, code_commit=code_commit)

    def _cancel(self, item: CancelWork) -> None:
        run_id = item.run.id
        handle = (self.runs.get(run_id) if run_id is not None else None) or item.run.handle
        if handle is None and run_id in self.preparing:
            self.cancelled_early.add(run_id)  # the checkout thread reports it cancelled
        if handle:
            self.launcher.signal(handle, signal.SIGTERM)
        self._report(item.id, handle=handle or "gone")

    def _report(
        self, item_id: int, handle: str | None = None, error: str | None = None, code_commit: str | None = None
    ) -> None:
        delay = 0.1
        while not self.stop_event.is_set():
            try:
                self.client.report_launch(item_id, handle=handle, error=error, code_commit=code_commit)
                return
            except DevyardError as exc:
                if getattr(exc, "status", None) in (404, 409, 422):
                    return
                self.stop_event.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    def _heartbeats(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_S):
            alive = []
            for run_id, handle in list(self.runs.items()):
                try:
                    status = self.launcher.status(handle)
                except Exception:
                    log.exception("run %s: status check failed", run_id)
                    alive.append(run_id)  # unknown is not dead: the worker's own heartbeats decide
                    continue
                if status.state is LaunchState.running:
                    alive.append(run_id)
                    continue
                self.runs.pop(run_id, None)
                killed = status.exit_code is not None and status.exit_code >= 128
                if killed:
                    self._report_killed(run_id, status.exit_code or 0, status.reason)
                self._worker_ended(run_id, killed)
            try:
                assert self.agent_id is not None
                self.client.agent_heartbeat(self.agent_id, alive)
            except DevyardError as exc:
                log.warning("heartbeat failed: %s", exc)

    def _worker_ended(self, run_id: int, killed: bool) -> None:
        folder = self.run_folders.pop(run_id, None)
        if killed or folder is not None:  # in a thread: a large folder must not hold up the heartbeats
            self._in_background(f"run-{run_id}-after", self._after_worker, run_id, folder, killed)

    def _after_worker(self, run_id: int, folder: Path | None, killed: bool) -> None:
        """A killed worker neither stopped its command nor removed the run's folder: both are
        done here. Otherwise the worker removed the folder, except for a container's mount point,
        left empty; or it kept it on purpose (a refused artifact, an outcome it could not
        report), and so does this."""
        if killed and self.launcher.substrate == "local" and stop_orphaned_command(self.config.spool / str(run_id)):
            log.info("run %s: stopped the command its killed worker left running", run_id)
        if folder is None:
            return
        if not killed:
            with contextlib.suppress(OSError):  # not empty: kept on purpose; gone: removed already
                folder.rmdir()
            return
        kept = remove_run_folder(folder)
        if kept:
            log.warning("run %s: %s", run_id, kept)

    def _in_background(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._background_lock:
            self._background = [t for t in self._background if t.is_alive()]
            self._background.append(thread)
        thread.start()

    def _report_killed(self, run_id: int, exit_code: int, reason: str | None) -> None:
        """The worker died before it could report (killed, OOM): fail the run with the reason.
        A worker that did report first makes this a 409, which is fine."""
        cause = f" ({reason})" if reason else ""
        error = f"The run's worker was killed{cause} with exit code {exit_code} before the run finished."
        try:
            self.client.report_worker_killed(run_id, exit_code, error)
        except DevyardError as exc:
            log.info("run %s: not marked killed: %s", run_id, exc)

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """Stop claiming work; give the clean-up of ended runs (stopping a killed worker's
        command, removing its folder) up to ``wait_s`` to finish."""
        self.stop_event.set()
        deadline = time.monotonic() + wait_s
        with self._background_lock:
            pending = list(self._background)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))


def agent_for(
    settings: Settings,
    client: ControlClient,
    *,
    substrate: str | None = None,
    name: str | None = None,
    queue: str = "default",
) -> Agent:
    """An agent for ``substrate`` (default: the settings') with the data dir's volume and spool;
    raises LaunchError with one sentence when the substrate cannot work here."""
    substrate = substrate or settings.substrate
    launcher = make_launcher(substrate, settings)
    layout = DataDir(settings.data_dir)
    config = AgentConfig(
        name=name or f"{socket.gethostname()}-{substrate}",
        queue=queue,
        api_url=client.url,
        volume=layout.volume,
        spool=layout.spool,
    )
    return Agent(config, client, launcher)
