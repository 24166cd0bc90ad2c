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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
                folder.mkdir(parents=True, exist_ok=True)
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
