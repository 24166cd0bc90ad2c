"""Running git for checkouts: a clean environment, credentials that never reach argv, config
files or messages, and failures turned into one sentence that names the URL without a secret.

Credentials: an HTTPS token is answered by a one-line credential helper that reads it from the
git process's environment (``/proc/<pid>/environ`` is readable by its user only; argv is readable
by everyone); an SSH deploy key is written to a 0600 file in the agent's private scratch folder
for the duration of the command. The user's and the system's git config are not read, so a
credential helper or an ``insteadOf`` of the agent's user never takes part.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from control.wire.code import uses_ssh

# The token stays in the environment of the git process; the helper echoes it on "get".
_HELPER = (
    '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" "$DEVYARD_GIT_USER" "$DEVYARD_GIT_TOKEN"; }; f'
)
LOW_SPEED_S = 60  # a transfer slower than 1 byte/s for this long is given up


class CheckoutFailed(Exception):
    """The run's code could not be fetched or checked out; the message is one sentence for the
    user and contains no secret."""


@dataclass(frozen=True)
class Credential:
    secret_name: str | None
    value: str | None
    """The token or deploy key; None when the project names no secret or the environment lacks it."""

    def scrub(self, text: str) -> str:
        if self.value:
            for line in {self.value, *self.value.strip().splitlines()}:
                if len(line.strip()) >= 4:
                    text = text.replace(line.strip(), "***")
        return text


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "TMPDIR", "TZ")}
    env.update(
        {
            "HOME": str(home),
            "LANG": "C",
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
        }
    )
    return env


@contextlib.contextmanager
def remote_env(url: str, credential: Credential, scratch: Path, known_hosts: Path) -> Iterator[dict[str, str]]:
    """The environment of a git command that talks to ``url`` with ``credential``."""
    env = base_env(scratch)
    config = [("credential.helper", ""), ("http.lowSpeedLimit", "1"), ("http.lowSpeedTime", str(LOW_SPEED_S))]
    key_file: Path | None = None
    if uses_ssh(url):
        options = [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=20",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={known_hosts}",
        ]  # fmt: skip
        if credential.value:
            key_file = scratch / "deploy-key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(credential.value.strip() + "\n")
            options += ["-i", str(key_file), "-o", "IdentitiesOnly=yes"]
        env["GIT_SSH_COMMAND"] = shlex.join(options)
    elif credential.value and url.startswith(("https:", "http:")):
        config.append(("credential.helper", _HELPER))
        env["DEVYARD_GIT_USER"] = urlsplit(url).username or "x-access-token"
        env["DEVYARD_GIT_TOKEN"] = credential.value.strip()
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    try:
        yield env
    finally:
        if key_file is not None:
            key_file.unlink(missing_ok=True)


def git(
    args: list[str], env: dict[str, str], timeout_s: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run git; never raises for a non-zero exit (the caller words it)."""
    try:
        return subprocess.run(
            ["git", *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"timed out after {timeout_s:.0f} s")
    except FileNotFoundError:
        raise CheckoutFailed("git is not installed on the agent's machine (it checks out the runs' code).") from None


_REFUSED = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied (publickey",
    "returned error: 401",
    "returned error: 403",
    "access denied",
    "invalid username or password",
)
_MISSING = ("repository not found", "returned error: 404", "does not appear to be a git repository", "not found")


def fetch_failure(url: str, credential: Credential, stderr: str) -> CheckoutFailed:
    """One sentence for a failed fetch: refused, not found, or unreachable, naming the URL."""
    said = stderr.lower()
    if any(marker in said for marker in _REFUSED):
        if credential.value:
            return CheckoutFailed(
                f"The repository {url} refused the credentials in secret {credential.secret_name};"
                " check the token or deploy key and its access to the repository."
            )
        if credential.secret_name:
            return CheckoutFailed(
                f"The repository {url} asks for credentials and the run's environment has no secret"
                f" {credential.secret_name}; add it with `yard envs set PROJECT ENV --secret"
                f" {credential.secret_name}=...`."
            )
        return CheckoutFailed(
            f"The repository {url} asks for credentials; put a token or deploy key in an environment"
            " secret and name it with `yard projects set PROJECT --repo-secret NAME`."
        )
    if any(marker in said for marker in _MISSING):
        return CheckoutFailed(f"The repository {url} does not exist, or the credentials given cannot see it.")
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "no answer")
    last = credential.scrub(last.removeprefix("fatal: ").removeprefix("error: ")).rstrip(".")
    return CheckoutFailed(f"The repository {url} could not be reached: {last}.")
