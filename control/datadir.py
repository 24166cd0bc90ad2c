"""Layout of the data dir used by the embedded stack.

```
<data-dir>/
  devyard.toml      optional settings
  devyard.db        SQLite metadata (embedded shape)
  objects/          local object store (logs, artifacts)
  volume/           the shared persistent volume: workspaces/<user>/<project>, runs/<run-id>
  state/            server.json (pid, url), the supervisor's log and secret.key (the key that
                    encrypts environment secrets when DEVYARD_SECRET_KEYS is not set; mode 0600)
  spool/            run workers' local log spools
```

Everything in it is the devyard user's alone: folders 0700, files 0600. Server processes set
umask 077 (:func:`private_umask`), and :meth:`DataDir.prepare` tightens a data dir made by an
earlier version (0755 folders, a 0644 database).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_umask() -> None:
    """Files and folders this process creates are its user's alone. Server processes only: the
    commands they launch get the usual umask back (compose/local.py)."""
    os.umask(PRIVATE_UMASK)


def make_private(path: Path) -> None:
    """Take group and other permissions away from ``path`` if it exists and is ours."""
    try:
        info = path.lstat()
        if info.st_uid != os.geteuid() or path.is_symlink():
            return
        os.chmod(path, PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)
    except OSError:
        pass


def sqlite_files(database_url: str) -> list[Path]:
    """The database file of a SQLite URL and its -wal / -shm companions (none for other URLs)."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or ":memory:" in database_url:
        return []
    db = Path(database_url[len(prefix) :].split("?", 1)[0])
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


class DataDirProblem(Exception):
    """The data dir cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def settings_file(self) -> Path:
        return self.root / "devyard.toml"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def volume(self) -> Path:
        return self.root / "volume"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def server_file(self) -> Path:
        return self.state / "server.json"

    @property
    def server_log(self) -> Path:
        return self.state / "server.log"

    @property
    def secret_key_file(self) -> Path:
        return self.state / "secret.key"

    def prepare(self) -> None:
        """Create the layout, failing with one sentence if the folder is not writable."""
        try:
            for folder in (self.root, self.objects, self.volume, self.state, self.spool):
                folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
                make_private(folder)
            for private in (self.settings_file, self.secret_key_file, self.server_file, self.server_log):
                make_private(private)
        except OSError as exc:
            raise DataDirProblem(
                f"Cannot create the data dir {self.root} ({exc.strerror}); pass --data-dir with a writable folder."
            ) from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise DataDirProblem(f"The data dir {self.root} is not writable; pass --data-dir with a writable folder.")
        probe = self.state / ".write-probe"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise DataDirProblem(
                f"The data dir {self.root} is not writable ({exc.strerror}); pass --data-dir with a writable folder."
            ) from exc
