"""Whether a full sync would find nothing to do, decided from a snapshot (see :mod:`sync.snapshot`).

The one implementation of the no-change check: :meth:`sync.engine.SyncEngine.sync` runs it
before anything else, and so does ``yard sync``'s fast start (:mod:`tui.cli.quick_sync`), which
cannot afford the engine's imports (httpx, pygit2) and so imports nothing here that needs them.
The two questions to the develop server (has the workspace changed since the snapshot's
manifest token? where are its git refs?) go out before the tree is walked and are answered while
it is (see :mod:`sync.probe`); the local HEAD is compared with the recorded one after the walk.
"""

from __future__ import annotations

from dataclasses import dataclass

from control.wire.manifest import Entry
from sync.probe import Question
from sync.report import GitReport, SyncReport, head_in_sync
from sync.snapshot import Snapshot

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the fast start does without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from control.trust import Trust
    from sync.githead import Head


@dataclass
class Outcome:
    """What the no-change check found."""

    report: SyncReport | None  # the report of a sync with nothing to do; None: a full sync is needed
    # The workspace manifest (entries by path, token) when the develop server sent it because the
    # workspace changed: the full sync that follows needs no second one.
    listing: tuple[dict[str, Entry], str | None] | None = None


def parse_listing(data: dict[str, Any]) -> tuple[dict[str, Entry] | None, str | None]:
    """A ``/files/manifest`` answer: the entries by path (None for "unchanged") and its token."""
    token = data.get("token") if isinstance(data.get("token"), str) else None
    if data.get("unchanged"):
        return None, token
    return {item["path"]: Entry.from_json(item) for item in data["entries"]}, token


def check(
    root: Path,
    directory: Path,
    api_url: str,
    token: str,
    server_id: int,
    head: Callable[[], Head | None],
    trust: Trust | None = None,
) -> Outcome:
    """Whether the tree at ``root``, the develop server's workspace and the git state are all as
    the snapshot in the sync state ``directory`` recorded them; ``head`` reads the local HEAD."""
    snapshot = Snapshot.load(directory)
    if snapshot is None:
        return Outcome(None)
    listing = Question(api_url, token, server_id, "/files/manifest", {"since": snapshot.token}, trust)
    refs = Question(api_url, token, server_id, "/git/refs", None, trust) if snapshot.git is not None else None
    try:
        same = snapshot.tree_unchanged(root) and head() == snapshot.git
        answer = listing.answer()
        if answer is None or answer[0] != 200:
            return Outcome(None)  # the full sync asks again and reports what is wrong
        entries, manifest_token = parse_listing(answer[1])
        if entries is not None:
            return Outcome(None, (entries, manifest_token))
        if not same:
            return Outcome(None)
        branch, commit, detached = snapshot.git or (None, None, False)
        if refs is not None:
            found = refs.answer()
            if found is None or found[0] != 200 or not head_in_sync(GitReport(branch, commit, detached), found[1]):
                return Outcome(None)
    finally:
        listing.close()
        if refs is not None:
            refs.close()
    report = SyncReport("sync", unchanged=len(snapshot.rows))
    report.git = GitReport(branch, commit, detached) if snapshot.git else GitReport(skipped="not a git repository")
    return Outcome(report)
