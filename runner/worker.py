"""The run worker: ``python -m runner.worker --spec FILE``.

Started by an agent's launcher, once per run. It execs the user's command in a process group of
its own, captures stdout and stderr through one channel into the spool (framed, timestamped, in
the order the command wrote them, secrets masked), ships
the spool to the control API, enforces the timeout, turns SIGTERM into a graceful stop of the
command (SIGTERM to its group, SIGKILL after the grace period), uploads artifacts and reports the
outcome. Its connection details arrive in the environment (``DEVYARD_WORKER_URL``,
``DEVYARD_WORKER_TOKEN``, ``DEVYARD_WORKER_TLS``) and are removed before the command starts, so the command never sees
the token.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from control.clock import utcnow
from control.logformat import STEP, encode_lines
from control.trust import WORKER_ENV as TRUST_ENV
from control.trust import Trust
from control.workerclient import RequestRefused, Transient, WorkerApi
from runner.capture import OutputReader, masker, open_channel
from runner.orphans import forget_command, record_command
from runner.procfs import signal_group
from runner.scratch import remove_run_folder
from runner.shipper import Shipper
from runner.spool import Spool
from runner.step_reports import StepReporter
from runner.toolpath import with_tools

ORPHAN_WAIT_S = 1.0
SHIP_PATIENCE_S = 24 * 3600.0  # after the command ended, keep trying to reach the API this long
# Only these variables of the agent's own environment reach the command.
PASSTHROUGH = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SHELL", "TERM")


def command_env(spec: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSTHROUGH}
    env.update({str(k): str(v) for k, v in spec.get("env", {}).items()})
    env["DEVYARD_RUN_ID"] = str(spec["id"])
    env["DEVYARD_PROJECT"] = str(spec.get("project") or "")
    env["DEVYARD_ATTEMPT"] = str(spec.get("attempt", 1))
    if spec.get("tty"):
        # A terminal with no keyboard: colours on, pagers that would wait for a key off.
        if env.get("TERM", "dumb") == "dumb":
            env["TERM"] = "xterm-256color"
        env.setdefault("PAGER", "cat")
        env.setdefault("GIT_PAGER", "cat")
    # The worker starts in the run's code folder (its checkout, or the workspace).
    return with_tools(env, Path.cwd())


def retry_forever(call: Any, *args: Any, until: Callable[[], float | None] = lambda: None) -> Any:
    """Call the API until it answers (the run's outcome must not be lost to an outage), or
    until the deadline ``until()`` returns has passed, then re-raise."""
    delay = 0.1
    while True:
        try:
            return call(*args)
        except Transient:
            deadline = until()
            if deadline is not None and time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class Step:
    """One step of the run as the worker runs it; ``report()`` is its wire form (``WorkerStep``)."""

    def __init__(self, index: int, name: str, command: list[str]) -> None:
        self.index, self.name, self.command = index, name, command
        self.state = "pending"
        self.exit_code: int | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.log_line: int | None = None

    def report(self) -> dict[str, Any]:
        body = {
            "index": self.index,
            "state": self.state,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "log_line": self.log_line,
        }
        return {k: v for k, v in body.items() if v is not None}


def steps_of(spec: dict[str, Any]) -> list[Step]:
    """The run's steps; a spec without any (an older API) is one step, its command."""
    steps = spec.get("steps") or [{"name": "command", "command": spec.get("command") or []}]
    return [Step(i, str(step["name"]), list(step["command"])) for i, step in enumerate(steps)]


def stop_sequence(spec: dict[str, Any]) -> list[signal.Signals]:
    """The run's stop signals in order (default TERM); KILL follows the last grace period."""
    names = spec.get("stop_signals") or ["TERM"]
    return [signal.Signals[f"SIG{name}"] for name in names if f"SIG{name}" in signal.Signals.__members__]


class Worker:
    def __init__(self, spec: dict[str, Any], api: WorkerApi, spool_dir: Path) -> None:
        self.spec = spec
        self.api = api
        self.spool = Spool(spool_dir / "log")
        self.shipper = Shipper(self.spool, api)
        self.steps = steps_of(spec)
        self.step_reports = StepReporter(api)
        self.stop_reason: str | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._stopping: subprocess.Popen[bytes] | None = None
        self.artifacts_refused = 0
        self.written_since: int | None = None
        """The file system's time when the first step started: only files written since are artifacts."""

    @property
    def grace_s(self) -> float:
        return float(self.spec.get("cancel_grace_s", 10.0))

    def request_stop(self, reason: str) -> None:
        """Called from the SIGTERM handler or the timeout (both on the main thread): stop the
        running step with the run's stop signals; no later step starts."""
        if self.stop_reason is None:
            self.stop_reason = reason
        child = self.child
        if child is not None and child.poll() is None:
            self._stop_child(child)
        else:
            # The command already ended and we are only shipping: told to stop, give the
            # API a grace period and then exit, keeping the spool on disk.
            self.shipper.give_up_at = time.monotonic() + self.grace_s

    def _stop_child(self, child: subprocess.Popen[bytes]) -> None:
        if self._stopping is not child:
            self._stopping = child
            threading.Thread(target=self._terminate, args=(child,), daemon=True).start()

    def _terminate(self, child: subprocess.Popen[bytes]) -> None:
        """Each stop signal to the step's process group in turn, a grace period apart, then KILL.
        Output printed while stopping is still read and stored (the reader runs until the end)."""
        for sig in stop_sequence(self.spec):
            _signal_group(child.pid, sig)
            try:
                child.wait(self.grace_s)
                return
            except subprocess.TimeoutExpired:
                continue
        _signal_group(child.pid, signal.SIGKILL)

    def run(self) -> int:
        self.shipper.start()
        self.step_reports.start()
        cwd = Path(self.spec["cwd"])
        started_at = utcnow().isoformat()
        if self.stop_reason is not None:
            # Cancelled (or timed out) before the command started: do not start it at all.
            outcome = "timed_out" if self.stop_reason == "timeout" else "cancelled"
            self._skip_rest()
            return self._complete(outcome, 128 + signal.SIGTERM, None, started_at, utcnow().isoformat())
        try:
            if not cwd.is_dir():
                raise FileNotFoundError(f"working directory {cwd} does not exist")
            folder = self.spec.get("code_folder")
            if folder and not cwd.resolve().is_relative_to(Path(folder).resolve()):
                raise FileNotFoundError(f"working directory {cwd} is outside the run's code folder {folder}")
        except (OSError, ValueError) as exc:
            self._skip_rest()
            return self._complete("failed_to_start", 127, f"The {exc}.", started_at, utcnow().isoformat())
        self.written_since = fs_now(self.spool.path.parent)
        timeout_s = self.spec.get("timeout_s")
        deadline = time.monotonic() + timeout_s if timeout_s else None
        outcome, code, error = "exited", 0, None
        for step in self.steps:
            if self.stop_reason is not None:
                break
            outcome, code, error = self._run_step(step, cwd, deadline)
            if outcome != "exited" or code != 0:
                break
        self._skip_rest()
        if outcome == "exited":
            outcome = {"timeout": "timed_out", "cancel": "cancelled"}.get(self.stop_reason or "", "exited")
        return self._complete(outcome, code, error, started_at, utcnow().isoformat())

    def _run_step(self, step: Step, cwd: Path, deadline: float | None) -> tuple[str, int, str | None]:
        """Run one step to its end: ``(outcome, exit code, error)`` as the run would report them."""
        if len(self.steps) > 1:
            self.spool.append(self._marker(step))
        step.log_line = self.spool.lines + (0 if len(self.steps) > 1 else 1)
        step.started_at = utcnow().isoformat()
        try:
            read_end, write_end = open_channel(self.spec.get("tty"))
            try:
                # One channel for both streams: the kernel orders the command's writes, two pipes
                # read by two threads did not (an error printed last was stored first).
                child = subprocess.Popen(
                    step.command,
                    cwd=cwd,
                    env=command_env(self.spec),
                    stdin=subprocess.DEVNULL,
                    stdout=write_end,
                    stderr=write_end,
                    start_new_session=True,
                    bufsize=0,
                )
            except BaseException:
                os.close(read_end)
                raise
            finally:
                os.close(write_end)
        except (OSError, ValueError) as exc:
            outcome, code, error = self._start_failure(exc, step)
            self._step_ended(step, "failed", code)
            return outcome, code, error
        self.child = child
        # For the agent, should this worker be killed: the command would outlive it.
        record_command(self.spool.path.parent, child.pid, int(self.spec["id"]))
        if self.stop_reason is not None:
            # Asked to stop while the step was being started: request_stop saw no child yet.
            self._stop_child(child)
        reader = OutputReader(read_end, self.spool.append, self.spec.get("secret_values", []))
        reader.start()
        if step.index == 0:
            # Reported from a thread: capture and the timeout must not wait for an API outage.
            threading.Thread(target=self._report_started, args=(child.pid, step.started_at), daemon=True).start()
        step.state = "running"
        self.step_reports.report(step.report())
        code = self._wait(child, deadline)
        reader.join(ORPHAN_WAIT_S)
        if reader.is_alive():
            # Background processes still hold the pipe open: end them like CI systems do.
            _signal_group(child.pid, signal.SIGKILL)
            reader.join()
        forget_command(self.spool.path.parent)
        stopped = {"timeout": "timed_out", "cancel": "cancelled"}.get(self.stop_reason or "")
        self._step_ended(step, stopped or ("succeeded" if code == 0 else "failed"), code)
        return "exited", code, None

    def _marker(self, step: Step) -> bytes:
        """The step marker record: where the step's output starts (secrets masked like output)."""
        line = " ".join(step.command).replace("\n", " ").replace("\r", " ")
        line = line if len(line) <= 200 else line[:199] + "…"
        text = f"{step.index + 1}/{len(self.steps)} {step.name}: {line}".encode("utf-8", "surrogateescape")
        return encode_lines(masker(self.spec.get("secret_values", []))(text) + b"\n", STEP, time.time_ns() // 1_000_000)

    def _step_ended(self, step: Step, state: str, code: int) -> None:
        step.state, step.exit_code, step.finished_at = state, code, utcnow().isoformat()
        self.step_reports.report(step.report())

    def _skip_rest(self) -> None:
        for step in self.steps:
            if step.state == "pending":
                step.state = "skipped"

    def _report_started(self, pid: int, started_at: str) -> None:
        # If the run already ended or the API stayed away, the outcome report settles it.
        with contextlib.suppress(Transient, RequestRefused):
            retry_forever(self.api.started, pid, started_at, until=lambda: self.shipper.give_up_at)

    def _wait(self, child: subprocess.Popen[bytes], deadline: float | None) -> int:
        while True:
            try:
                returncode = child.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    self.request_stop("timeout")
        return returncode if returncode >= 0 else 128 - returncode

    def _start_failure(self, exc: Exception, step: Step) -> tuple[str, int, str]:
        """Outcome, exit code and the one sentence for a step that could not start."""
        program = step.command[0] if step.command else ""
        if isinstance(exc, FileNotFoundError):
            message, code = f"Command '{program}' was not found on the agent's PATH.", 127
        elif isinstance(exc, PermissionError):
            message, code = f"Command '{program}' is not executable.", 126
        else:
            message, code = f"Command '{program}' could not start: {exc}.", 127
        if len(self.steps) > 1:
            message = f"Step {step.index + 1} ({step.name}): {message}"
        return "failed_to_start", code, message

    def _complete(self, outcome: str, code: int, error: str | None, started_at: str, finished_at: str) -> int:
        if self.shipper.give_up_at is None:
            # The command is done; shipping what is left waits out outages, but not forever. A
            # worker told to stop (SIGTERM) while its command was still running gets the grace
            # period, as one told after the command ended does (see request_stop).
            patience = (
                self.spec.get("cancel_grace_s", 10.0)
                if self.stop_reason == "cancel"
                else self.spec.get("max_outage_s", SHIP_PATIENCE_S)
            )
            self.shipper.give_up_at = time.monotonic() + float(patience)
        self.spool.close()
        self.shipper.join()
        if self.shipper.error and self.shipper.offset < self.spool.size:
            error = error or f"Logs could not be shipped: {self.shipper.error}"
        self._upload_artifacts()
        self.step_reports.close()
        body = {
            "outcome": outcome,
            "exit_code": code,
            "error": error,
            "started_at": started_at,
            "finished_at": finished_at,
            "log_seq": self.shipper.seq,
            "steps": [step.report() for step in self.steps],
        }
        try:
            retry_forever(self.api.finish, body, until=lambda: self.shipper.give_up_at)
        except RequestRefused as exc:
            print(f"devyard worker: the API refused the run's outcome: {exc}", file=sys.stderr)
            return 1
        except Transient as exc:
            print(
                f"devyard worker: gave up reporting the outcome ({exc}); the spool stays in {self.spool.path}",
                file=sys.stderr,
            )
            return 1
        self.spool.release()
        run_folder = self.spec.get("run_folder")
        if run_folder and not self.artifacts_refused:
            # The run's own folder (never a workspace) is of no use to anyone now. It stays when
            # an artifact was refused: that file exists nowhere else.
            kept = remove_run_folder(Path(run_folder))
            if kept:
                print(f"devyard worker: {kept}", file=sys.stderr)
        if self.shipper.offset >= self.spool.size:
            self.spool.path.unlink(missing_ok=True)
            # The run's spool folder goes too once empty (one was left per run, forever); where
            # it is a container's mount point, or holds artifact-errors, it stays.
            with contextlib.suppress(OSError):
                self.spool.path.parent.rmdir()
        return 0

    def _upload_artifacts(self) -> None:
        cwd = Path(self.spec["cwd"]).resolve()
        seen: set[Path] = set()
        for pattern in self.spec.get("artifact_globs", []):
            for match in sorted(glob.glob(pattern, root_dir=cwd, recursive=True)):
                path = (cwd / match).resolve()
                # Never follow a symlink out of the working directory.
                if path in seen or not path.is_file() or not path.is_relative_to(cwd):
                    continue
                if not self._written_during_run(path):
                    continue  # left by an earlier run (a workspace keeps target/): not this run's
                seen.add(path)
                try:
                    retry_forever(
                        self.api.put_artifact,
                        path.relative_to(cwd).as_posix(),
                        path,
                        until=lambda: self.shipper.give_up_at,
                    )
                except RequestRefused as exc:
                    self.artifacts_refused += 1
                    self.spool.path.with_name("artifact-errors").open("a").write(f"{match}: {exc}\n")

    def _written_during_run(self, path: Path) -> bool:
        """Created or modified since the first step started. ctime counts too: a file copied
        with its old modification time (``cp -p``, ``tar x``) was still created now."""
        if self.written_since is None:
            return False
        try:
            info = path.stat()
        except OSError:
            return False
        return max(info.st_mtime_ns, info.st_ctime_ns) >= self.written_since


def fs_now(folder: Path) -> int:
    """The time the kernel stamps on a file written now, in ns. It is a coarse clock (it can lag
    ``time.time_ns()`` by a few ms), so a file written right after the run started could look
    older than ``time.time_ns()`` taken then; a file created here carries the same clock."""
    name = folder / f".written-since-{os.getpid()}"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"-")
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
        name.unlink(missing_ok=True)


def _signal_group(pid: int, sig: int) -> None:
    signal_group(pid, sig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runner.worker", description="Run one devyard run and ship its logs.")
    parser.add_argument(
        "--spec", required=True, type=Path, help="JSON spec written by the agent (deleted after reading)."
    )
    args = parser.parse_args(argv)
    # No signal blocked, whatever the parent left blocked (the mask is inherited): a cancel's
    # SIGTERM must reach this worker, and the run's command inherits the mask from here.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    spec = json.loads(args.spec.read_text())
    args.spec.unlink(missing_ok=True)
    url = os.environ.pop("DEVYARD_WORKER_URL")
    token = os.environ.pop("DEVYARD_WORKER_TOKEN")
    # The certificate the agent trusts (pin, CA or the server's file), so this worker talks to
    # the API over the same TLS; removed with the rest before the command starts.
    trust = Trust.from_json(os.environ.pop(TRUST_ENV, None))
    spool_dir = Path(spec.pop("spool_dir"))
    worker = Worker(spec, WorkerApi(url, token, int(spec["id"]), trust=trust), spool_dir)
    signal.signal(signal.SIGTERM, lambda *_: worker.request_stop("cancel"))
    signal.signal(signal.SIGINT, lambda *_: worker.request_stop("cancel"))
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
