"""The sync engine: a full sync (manifest exchange) and a push of paths known to have changed.

:meth:`SyncEngine.sync` compares the whole local tree with the workspace manifest, keeps
whatever changed on the develop server as conflict copies, sends the difference and then the
git state. :meth:`SyncEngine.push` is the watch mode's fast path: it looks only at the paths a
file-system event named and compares them with what the last sync recorded, without asking the
develop server anything, so an edit reaches the workspace in one request.

The engine never prints; it returns a :class:`SyncReport` and tells a :class:`Progress`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from control.client import ControlClient, NotFound
from control.wire.batch import Delete, Op, PutDir, PutFile, PutSymlink
from control.wire.manifest import Entry
from sync import unchanged
from sync.gitstate import GitSync, local_head
from sync.ignore import IgnoreRules
from sync.local import LocalTree
from sync.plan import Conflict, Plan, conflict_name, make_plan, needs_digest, outermost, same_content
from sync.remote import RemoteWorkspace
from sync.report import SyncReport as SyncReport  # re-exported: it was defined here
from sync.snapshot import Snapshot, forget, stamps
from sync.state import Record, SyncState, state_dir
from sync.status import about, write_status
from sync.transfer import Progress, Sent, Uploader
from sync.workspace_rules import WorkspaceRules


def timestamp() -> str:
    """A compact UTC time for conflict copies: ``20250102T030405Z``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def to_op(entry: Entry) -> Op:
    """The batch entry that puts ``entry`` in the workspace."""
    if entry.kind == "dir":
        return PutDir(entry.path, entry.mode)
    if entry.kind == "symlink":
        assert entry.target is not None
        return PutSymlink(entry.path, entry.target)
    return PutFile(entry.path, entry.mode, entry.mtime_ns, entry.size)


class SyncEngine:
    """Keeps one develop server workspace equal to one local tree."""

    @classmethod
    def open(cls, client: ControlClient, server_id: int, workspace: str, root: Path) -> SyncEngine:
        """The engine for ``root`` and a develop server, with the state kept for that pair."""
        engine = cls(root, RemoteWorkspace(client, server_id), state_dir(client.url, workspace, root))
        engine.about.update(about(root, server_id, workspace, client.url))
        return engine

    def __init__(self, root: Path, remote: RemoteWorkspace, directory: Path) -> None:
        self.root = root
        self.remote = remote
        self.directory = directory  # the sync state's
        self.git = GitSync(root, remote)
        self.about: dict[str, Any] = {"root": os.fspath(root), "server": remote.server_id}
        self._outcome: dict[str, Any] = {}
        self._prefetched: tuple[dict[str, Entry], str | None] | None = None  # a manifest already fetched
        self._token: str | None = None  # the token of the manifest the last full sync compared with
        self._dropped = 0  # files left out of the last full sync because they could not be read

    # Loaded on first use: a sync that finds nothing changed (see sync.snapshot) needs none of them.
    @cached_property
    def state(self) -> SyncState:
        """What the last syncs left (see :mod:`sync.state`)."""
        return SyncState.load(self.directory)

    @cached_property
    def rules(self) -> IgnoreRules:
        """The tree's ignore rules."""
        return IgnoreRules(self.root, self.directory)

    @cached_property
    def workspace_rules(self) -> WorkspaceRules:
        """The ``.gitignore`` files only the workspace has."""
        return WorkspaceRules(self.directory)

    @cached_property
    def tree(self) -> LocalTree:
        """The local tree, filtered by the rules."""
        return LocalTree(self.root, self.rules, self.state.hashes)

    # ------------------------------------------------------------------ full sync

    def sync(self, *, dry_run: bool = False, progress: Progress | None = None, with_git: bool = True) -> SyncReport:
        """Compare everything and make the workspace equal to the local tree."""
        started = time.perf_counter()
        if not dry_run and with_git:
            unchanged = self._nothing_changed()
            if unchanged is not None:
                unchanged.seconds = time.perf_counter() - started
                write_status(self.directory, **self.about, conflicts=0, refused=0)
                return unchanged
        self.rules.refresh()
        stamp = timestamp()
        local, remote = self._both_sides()
        plan = make_plan(local, remote, self.state.knows, stamp, self.state.put_there)
        report = SyncReport("sync", dry_run=dry_run)
        report.conflicts = [{"path": c.path, "kept_as": c.kept_as} for c in plan.conflicts]
        report.left = plan.left
        if dry_run:
            _describe_plan(report, plan)
            report.git = self.git.push(dry_run=True) if with_git else None
            report.seconds = time.perf_counter() - started
            return report
        if plan.conflicts:
            kept = {conflict.path for conflict in plan.conflicts}
            report.conflicts = []
            for conflict in plan.conflicts:
                kept_as = self._keep(conflict, stamp)
                if kept_as is not None:
                    report.conflicts.append({"path": conflict.path, "kept_as": kept_as})
            local = self._hash_needed(self.tree.scan(), remote)
            plan = make_plan(
                local,
                remote,
                lambda path, record: path in kept or self.state.knows(path, record),
                stamp,
                self.state.put_there,
            )
        self._record_unchanged(local, remote)
        ops: list[Op] = [Delete(path) for path in plan.deletes] + [to_op(entry) for entry in plan.puts]
        if progress is not None:
            progress.begin(len(plan.files), plan.bytes)
        try:
            sent = Uploader(self.root, self.remote, self.state, progress).send(ops)
        finally:
            self.state.save(**self.about)
        _count(report, sent)
        report.unchanged = plan.unchanged
        if with_git:
            if progress is not None:
                progress.git()
            report.git = self.git.push(stamp=stamp)
            self._leave_snapshot(plan, report)
        report.seconds = time.perf_counter() - started
        self.save(report)
        return report

    def _nothing_changed(self) -> SyncReport | None:
        """The report of a sync with nothing to do, if the snapshot the last such sync left shows
        that neither the tree, nor the workspace, nor the git state changed since; else None
        (see :mod:`sync.unchanged`)."""
        client = self.remote.client
        if client.token is None:
            return None
        outcome = unchanged.check(
            self.root, self.directory, client.url, client.token, self.remote.server_id, self._head, client.trust
        )
        if outcome.listing is not None:
            self._prefetched = outcome.listing  # the full sync needs no second manifest
        return outcome.report

    def _head(self) -> tuple[str | None, str | None, bool] | None:
        head = local_head(self.root)
        return None if head is None else (head.branch, head.head, head.detached)

    def _leave_snapshot(self, plan: Plan, report: SyncReport) -> None:
        """After a full sync: a snapshot if it found nothing to do, else none (see sync.snapshot)."""
        git = report.git
        quiet = (
            plan.empty
            and not (report.conflicts or report.refused or report.unreadable or self._dropped)
            and git is not None
            and not git.moved
            and git.skipped in (None, "not a git repository")
            and self._token is not None
            and self.tree.last_rows is not None
        )
        if not quiet:
            forget(self.directory)
            return
        assert git is not None and self._token is not None and self.tree.last_rows is not None
        sources = [str(source[0]) for source in self.rules.stamps()["sources"]]
        sources.append(os.path.join(self.root, ".git", "config"))  # where core.excludesFile may be set
        Snapshot(
            token=self._token,
            rows=self.tree.last_rows,
            skipped=self.tree.last_skipped,
            sources=stamps(sources),
            git=(git.branch, git.head, git.detached) if git.skipped is None else None,
        ).save(self.directory)

    def _both_sides(self) -> tuple[dict[str, Entry], dict[str, Entry]]:
        """The local tree and the workspace manifest, fetched while the tree is scanned."""
        stamps = self.state.rule_stamps
        self.rules.trust(self.state.synced, stamps)
        prefetched, self._prefetched = self._prefetched, None
        with ThreadPoolExecutor(1, thread_name_prefix="manifest") as pool:
            pending = pool.submit(self.remote.listing) if prefetched is None else None
            local = self.tree.scan()
            if not self.rules.scan_trusted(stamps):
                self.rules.distrust()  # a .gitignore changed: every path is asked about again
                local = self.tree.scan()
            new_stamps = self.rules.stamps()
            entries, self._token = prefetched or pending.result()  # type: ignore[union-attr]
            remote = self._visible(entries or {}, local)
        if new_stamps != stamps:
            self.state.rule_stamps = new_stamps
            self.state.dirty = True
        return self._hash_needed(local, remote), remote

    def _visible(self, remote: dict[str, Entry], local: dict[str, Entry]) -> dict[str, Entry]:
        """The workspace entries the sync manages. What git would ignore is left alone: by the
        local rules, or by a ``.gitignore`` only the workspace has (a tool's cache folder, see
        :mod:`sync.workspace_rules`). A folder only the workspace has that holds ignored
        entries is kept, as ``git clean -d`` keeps it: deleting it would delete them."""
        with self.workspace_rules.locked():
            return self._visible_locked(remote, local)

    def _visible_locked(self, remote: dict[str, Entry], local: dict[str, Entry]) -> dict[str, Entry]:
        def ours(path: str) -> bool:
            # Put there by our syncs (so a local deletion must reach it), or tracked here.
            probe = path + "/" if remote[path].kind == "dir" else path
            return self.state.knows(path, Record.of(remote[path])) or self.rules.is_tracked(probe)

        wanted = WorkspaceRules.wanted(remote, local)
        self.workspace_rules.update(
            self.remote,
            {path: digest for path, digest in wanted.items() if not ours(path) and not self.rules.skip(path)},
        )
        visible: dict[str, Entry] = {}
        ignored_dirs: set[str] = set()
        holding_ignored: set[str] = set()
        for path, entry in remote.items():
            if path in local:
                visible[path] = entry
                continue
            parts = path.split("/")
            if any("/".join(parts[:depth]) in ignored_dirs for depth in range(1, len(parts))):
                continue
            probe = path + "/" if entry.kind == "dir" else path
            if self.rules.skip(probe) or (self.workspace_rules.skip(probe) and not ours(path)):
                if entry.kind == "dir":
                    ignored_dirs.add(path)
                holding_ignored.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
                continue
            visible[path] = entry
        for folder in holding_ignored:
            if folder not in local:
                visible.pop(folder, None)
        return visible

    def _hash_needed(self, local: dict[str, Entry], remote: dict[str, Entry]) -> dict[str, Entry]:
        self._dropped = 0
        for path in needs_digest(local, remote):
            hashed = self.tree.hashed(local[path])
            if hashed is None:  # unreadable here: leave the workspace's copy alone
                self._dropped += 1
                del local[path]
                remote.pop(path, None)
            else:
                local[path] = hashed
        return local

    def _keep(self, conflict: Conflict, stamp: str) -> str | None:
        """Save the workspace's version of a conflicting entry in the local tree; where it went.

        Next to the local file as planned; at the top of the tree if a local file stands where
        the folder for it would be; nowhere if it vanished from the workspace meanwhile.
        """
        kept_as = conflict.kept_as
        target = self.root / kept_as
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            kept_as = conflict_name(conflict.path.replace("/", "__"), stamp, lambda name: (self.root / name).exists())
            target = self.root / kept_as
        if conflict.remote.kind == "symlink":
            assert conflict.remote.target is not None
            os.symlink(conflict.remote.target, target)
            return kept_as
        try:
            self.remote.download(conflict.path, target)
        except NotFound:
            return None
        os.chmod(target, conflict.remote.mode & 0o777)
        os.utime(target, ns=(conflict.remote.mtime_ns, conflict.remote.mtime_ns))
        return kept_as

    def _record_unchanged(self, local: dict[str, Entry], remote: dict[str, Entry]) -> None:
        """Remember entries both sides already agree on, and forget what neither side has."""
        synced = self.state.synced
        for path, entry in local.items():
            theirs = remote.get(path)
            if theirs is not None and same_content(entry, theirs):
                record = Record.of(theirs)
                if synced.get(path) != record:
                    self.state.confirm(path, record)
        for path in [p for p in synced if p not in local and p not in remote]:
            self.state.confirm(path, None)

    # ------------------------------------------------------------------ watched paths

    def push(self, paths: Iterable[str], *, git: bool = False) -> SyncReport:
        """Send what changed at ``paths`` (relative to the root) since the last sync or push."""
        started = time.perf_counter()
        report = SyncReport("push", paths=sorted(set(paths)))
        deletes: list[str] = []
        puts: dict[str, Entry] = {}
        for path in report.paths:
            self._changes_at(path, deletes, puts)
        ordered = sorted(puts.values(), key=lambda entry: (entry.kind != "dir", entry.path))
        ops: list[Op] = [Delete(path) for path in outermost(deletes)] + [to_op(entry) for entry in ordered]
        if ops:
            forget(self.directory)
            _count(report, Uploader(self.root, self.remote, self.state).send(ops))
        if git:
            report.git = self.git.push(stamp=timestamp())
        report.seconds = time.perf_counter() - started
        return report

    def _changes_at(self, path: str, deletes: list[str], puts: dict[str, Entry]) -> None:
        known = self.state.synced.get(path)
        entry = self.tree.entry(path)
        if entry is None:
            if known is not None:
                deletes.append(path)
            return
        self._ensure_parents(path, puts)
        if known is not None and known.kind != entry.kind:
            deletes.append(path)
            known = None
        if entry.kind == "dir":
            if known is None or known.mode != entry.mode:
                puts[path] = entry
            if known is None:  # a new directory (perhaps moved in whole): everything below is new
                for below in self.tree.subtree(path).values():
                    self._compare(below, puts)
            return
        self._compare(entry, puts)

    def _compare(self, entry: Entry, puts: dict[str, Entry]) -> None:
        known = self.state.synced.get(entry.path)
        if entry.kind == "file" and known is not None and known.kind == "file":
            hashed = self.tree.hashed(entry)  # skip a save that did not change the content
            if hashed is None:
                return
            entry = hashed
        if known is None or known != Record.of(entry):
            puts[entry.path] = entry

    def _ensure_parents(self, path: str, puts: dict[str, Entry]) -> None:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            known = self.state.synced.get(parent)
            if known is not None and known.kind == "dir":
                continue
            entry = self.tree.entry(parent)
            if entry is not None and entry.kind == "dir":
                puts.setdefault(parent, entry)

    def use(self, remote: RemoteWorkspace) -> None:
        """Talk to ``remote`` from now on (the develop server came back, perhaps as a new one)."""
        self.remote = remote
        self.git = GitSync(self.root, remote)
        self.about["server"] = remote.server_id

    def save(self, report: SyncReport | None = None) -> None:
        """Write the sync state and its summary (a watch does this every few seconds and at the end)."""
        self.state.save(**self.about)
        if report is not None:
            self._outcome = {"conflicts": len(report.conflicts), "refused": len(report.refused)}
        write_status(self.directory, **self.about, **self._outcome)


def _describe_plan(report: SyncReport, plan: Plan) -> None:
    """What a dry run reports: the counts and every change the plan holds."""
    report.files, report.bytes = len(plan.files), plan.bytes
    report.links = sum(1 for entry in plan.puts if entry.kind == "symlink")
    report.dirs = sum(1 for entry in plan.puts if entry.kind == "dir")
    report.deleted, report.unchanged = len(plan.deletes), plan.unchanged
    report.changes = [{"op": "delete", "path": path} for path in plan.deletes]
    report.changes += [{"op": "put", "path": entry.path, "kind": entry.kind} for entry in plan.puts]


def _count(report: SyncReport, sent: Sent) -> None:
    report.files, report.bytes = sent.files, sent.bytes
    report.links, report.dirs, report.deleted = sent.links, sent.dirs, sent.deleted
    report.refused = [{"path": path, "message": message} for path, message in sent.refused]
    report.unreadable = sent.unreadable
