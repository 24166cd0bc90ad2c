"""Real git servers for tests: bare repositories over ``file://`` and private ones served over
HTTP by git itself (``git http-backend``, a CGI program) behind a token.

The HTTP side is a small threaded server on 127.0.0.1 (port 0) in the test process that runs
``git http-backend`` once per request, as a web server runs a CGI: it checks HTTP Basic
credentials (any user name, the password must be the repository's token) and answers 401 with
a Basic challenge otherwise, which is what GitHub and GitLab do with a token over HTTPS.

    with git_server(tmp_path) as server:
        repo = server.create("shop", private=True)
        sha = repo.commit({"dbt_project.yml": "name: shop\n"})
        repo.http_url, repo.file_url, server.token
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, input=input, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode().strip()


@dataclass
class Repo:
    """A bare repository on the server and a working clone the test commits in and pushes from."""

    name: str
    bare: Path
    work: Path
    private: bool
    server: GitServer
    default_branch: str = "main"

    @property
    def file_url(self) -> str:
        return self.bare.as_uri()

    @property
    def http_url(self) -> str:
        return f"{self.server.url}/{self.name}.git"

    def commit(
        self, files: dict[str, str | bytes], message: str = "change", branch: str | None = None, force: bool = False
    ) -> str:
        """Write ``files`` (a None-free mapping of path to content) on ``branch``, commit, push;
        returns the new commit. ``force``: the branch starts over from nothing (a force-push)."""
        branch = branch or self.default_branch
        if force:
            git("checkout", "--quiet", "--orphan", f"tmp-{secrets.token_hex(4)}", cwd=self.work)
            git("rm", "-rf", "--quiet", "--ignore-unmatch", ".", cwd=self.work)
        else:
            exists = git("branch", "--list", branch, cwd=self.work)
            git("checkout", "--quiet", *([] if exists else ["-b"]), branch, cwd=self.work)
        for path, content in files.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        sha = git("rev-parse", "HEAD", cwd=self.work)
        if force:
            git("branch", "--quiet", "-f", branch, sha, cwd=self.work)
            git("checkout", "--quiet", branch, cwd=self.work)
        git("push", "--quiet", *(["--force"] if force else []), "origin", f"{branch}:{branch}", cwd=self.work)
        return sha

    def tag(self, name: str, ref: str = "HEAD") -> str:
        git("tag", "-f", name, ref, cwd=self.work)
        git("push", "--quiet", "--force", "origin", f"refs/tags/{name}", cwd=self.work)
        return git("rev-parse", f"{name}^{{commit}}", cwd=self.work)

    def delete_branch(self, branch: str) -> None:
        git("push", "--quiet", "origin", f":{branch}", cwd=self.work)

    def push_ref(self, ref: str, commit: str) -> None:
        """Point any ref at ``commit`` on the server (``refs/pull/7/head``, as a forge does)."""
        git("--git-dir", str(self.bare), "update-ref", ref, commit)


@dataclass
class GitServer:
    root: Path
    token: str = field(default_factory=lambda: "tok_" + secrets.token_hex(16))
    url: str = ""
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every HTTP request, in order."""
    gate: threading.Event | None = None
    """When set to an Event, every HTTP request waits for it (a slow server, held by the test)."""
    waiting: int = 0
    """Requests waiting at the gate now."""
    _http: ThreadingHTTPServer | None = None

    def create(self, name: str, private: bool = False, files: dict[str, str | bytes] | None = None) -> Repo:
        """A new bare repository with one commit on ``main`` (``files``, or a README)."""
        bare = self.root / "repos" / f"{name}.git"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        # What GitHub allows: fetching a commit by id that no branch reaches (pull requests).
        git("--git-dir", str(bare), "config", "uploadpack.allowAnySHA1InWant", "true")
        git("--git-dir", str(bare), "config", "http.receivepack", "true")
        if private:
            (bare / "devyard-private").write_text("")
        work = self.root / "work" / name
        git("clone", "--quiet", str(bare), str(work))
        repo = Repo(name, bare, work, private, self)
        repo.commit(files or {"README.md": f"# {name}\n"}, "first")
        return repo

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self)

            def do_POST(self) -> None:
                server._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, name="git-http", daemon=True).start()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(password, self.token)

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        gate = self.gate
        if gate is not None:
            self.waiting += 1
            gate.wait(60)
            self.waiting -= 1
        path, _, query = request.path.partition("?")
        name = path.lstrip("/").split(".git/", 1)[0]
        bare = self.root / "repos" / f"{name}.git"
        if not bare.is_dir():
            self._answer(request, 404, b"not found\n")
            return
        if (bare / "devyard-private").exists() and not self._authorized(request.headers.get("Authorization")):
            self._answer(request, 401, b"authentication required\n", {"WWW-Authenticate": 'Basic realm="git"'})
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(request)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root / "repos"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "REQUEST_METHOD": request.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "git",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
        }
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = done.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers[key.strip()] = value.strip()
        self._answer(request, status, payload, headers)

    def _answer(
        self, request: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.requests.append((request.command, request.path, status))
        request.send_response(status)
        for key, value in (headers or {}).items():
            if key.lower() not in ("content-length", "connection"):
                request.send_header(key, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


def _read_chunked(request: BaseHTTPRequestHandler) -> bytes:
    out = b""
    while True:
        size = int(request.rfile.readline().strip() or b"0", 16)
        if size == 0:
            request.rfile.readline()
            return out
        out += request.rfile.read(size)
        request.rfile.readline()


@contextlib.contextmanager
def git_server(root: Path) -> Iterator[GitServer]:
    """A git server rooted at ``root``, its HTTP side on a free loopback port."""
    server = GitServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
