"""Environment secrets encrypted at rest: Fernet tokens under one or more keys.

The keys come from the ``secret_keys`` setting (``DEVYARD_SECRET_KEYS``, comma-separated; the first
one encrypts, every one decrypts, so a key is rotated by putting a new one first). Without it, the
embedded stack keeps one key in ``<data-dir>/state/secret.key``, created on first use with mode
0600. API replicas on PostgreSQL must share their keys, so they never invent a key file.

A box is bound to the engine it serves (``bind``); the ``SealedSecrets`` column type finds it
through the engine's dialect, so ``Environment.secrets`` stays a plain ``dict[str, str]``.
"""

from __future__ import annotations

import json
import os
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine
from sqlalchemy.engine import Dialect

from control.datadir import DataDir
from control.settings import Settings

KEYS_VARIABLE = "DEVYARD_SECRET_KEYS"


class SecretKeyProblem(Exception):
    """The configured keys cannot be used; the message is one sentence for the user."""


class SecretsUnreadable(Exception):
    """Stored secrets cannot be decrypted with the configured keys (a key was lost or is wrong)."""


class SecretBox:
    """Seals a secrets mapping into one Fernet token and opens it again; never shows its keys."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SecretKeyProblem(f"No secret key is configured; set {KEYS_VARIABLE}.")
        self._current = Fernet(keys[0])
        self._all = MultiFernet([Fernet(k) for k in keys])

    def __repr__(self) -> str:
        return "SecretBox(<keys hidden>)"

    def seal(self, secrets: dict[str, str]) -> str:
        """A token of ``secrets`` under the first key."""
        return self._all.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, str]:
        """The secrets in ``token``; raises :class:`SecretsUnreadable` if no key fits."""
        try:
            opened = json.loads(self._all.decrypt(token.encode()))
        except (InvalidToken, ValueError) as exc:
            raise SecretsUnreadable("The secrets cannot be decrypted with the configured keys.") from exc
        return {str(k): str(v) for k, v in opened.items()}

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is under the first key (older keys' tokens get re-encrypted)."""
        try:
            self._current.decrypt(token.encode())
        except (InvalidToken, ValueError):
            return False
        return True


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, url-safe base64)."""
    return Fernet.generate_key().decode()


def parse_keys(text: str) -> list[bytes]:
    """The comma-separated keys of ``DEVYARD_SECRET_KEYS``, each checked to be a Fernet key."""
    keys = [part.strip().encode() for part in text.split(",") if part.strip()]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise SecretKeyProblem(
                f"Key {position} of {KEYS_VARIABLE} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "`yard deploy render` generates one."
            ) from None
    if not keys:
        raise SecretKeyProblem(f"{KEYS_VARIABLE} is set but holds no key.")
    return keys


def key_file_keys(path: Path) -> list[bytes]:
    """The key in ``path``, created (mode 0600) if the file does not exist yet.

    Several API processes may start at once: the key is written to a private temporary file and
    linked into place, so exactly one key wins and every process reads that one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=".secret-key-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(new_key() + "\n")
            os.link(scratch, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            os.unlink(scratch)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecretKeyProblem(f"Cannot read the secret key file {path} ({exc.strerror}).") from exc
    try:
        return parse_keys(text)
    except SecretKeyProblem:
        raise SecretKeyProblem(
            f"The secret key file {path} does not hold a Fernet key; restore it from a backup."
        ) from None


def box_for(settings: Settings) -> SecretBox:
    """The box of these settings: ``secret_keys`` if set, else the data dir's key file."""
    if settings.secret_keys:
        return SecretBox(parse_keys(settings.secret_keys))
    return SecretBox(key_file_keys(DataDir(settings.data_dir).secret_key_file))


def require_shared_keys(settings: Settings) -> None:
    """Refuse a cluster replica on PostgreSQL without ``secret_keys``: each would invent its own key."""
    if not settings.secret_keys and not settings.effective_database_url.startswith("sqlite"):
        raise SecretKeyProblem(
            f"An API replica on PostgreSQL needs the shared secret keys in {KEYS_VARIABLE} "
            "(`yard deploy render` generates one); it will not invent a key of its own."
        )


_boxes: weakref.WeakKeyDictionary[Dialect, SecretBox] = weakref.WeakKeyDictionary()


def bind(engine: Engine, box: SecretBox) -> None:
    """Seal and open ``Environment.secrets`` read or written through ``engine`` with ``box``."""
    _boxes[engine.dialect] = box


def box_of(dialect: Dialect) -> SecretBox:
    """The box bound to the engine of ``dialect``."""
    box = _boxes.get(dialect)
    if box is None:
        raise SecretsUnreadable("No secret keys are configured for this database connection.")
    return box
