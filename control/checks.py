"""`yard doctor`'s checks of the control plane's own stores: the database and the object store."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from control.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _creatable(path: Path) -> str | None:
    """Why ``path`` could not be created later (None if it could); creates nothing."""
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    return None


def _not_there_yet(name: str, what: str, path: Path) -> Check:
    """A check of something `yard up` creates: doctor only looks, so it says whether it could."""
    problem = _creatable(path)
    if problem is not None:
        return Check(name, False, f"The {what} {path} does not exist and cannot be created: {problem}.", True)
    return Check(name, True, f"The {what} {path} does not exist yet; `yard up` creates it.", True)


def check_database(settings: Settings) -> Check:
    from control.datadir import sqlite_files
    from control.db.engine import DatabaseProblem, check_connection, make_engine, redact
    from control.db.migrate import current_revision, head_revision

    url = settings.effective_database_url
    database_file = next(iter(sqlite_files(url)), None)
    if database_file is not None and not database_file.exists():
        return _not_there_yet("database", "SQLite database", database_file)
    try:
        engine = make_engine(url, pool=False)
        check_connection(engine)
        current, head = current_revision(engine), head_revision()
        engine.dispose()
    except DatabaseProblem as exc:
        return Check("database", False, str(exc), True)
    if current != head:
        state = "not initialised" if current is None else f"at revision {current}"
        return Check(
            "database", True, f"{redact(url)} reachable, schema {state} (head {head}); `yard up` migrates it.", True
        )
    return Check("database", True, f"{redact(url)} reachable, schema at head {head}.", True)


def check_object_store(settings: Settings) -> Check:
    from control.objectstore import ObjectNotFound, ObjectStore, ObjectStoreProblem

    url = settings.effective_object_store_url
    if url.startswith("file://"):
        folder = Path(unquote(urlparse(url).path))
        if not folder.exists():
            return _not_there_yet("object store", "object store folder", folder)
    try:
        ObjectStore.from_url(url, s3_endpoint=settings.s3_endpoint, s3_region=settings.s3_region).check()
    except (ObjectStoreProblem, ObjectNotFound) as exc:
        return Check("object store", False, str(exc), True)
    return Check("object store", True, f"{url} accepts writes, reads and deletes.", True)
