"""Git state: make the workspace repository sit on the local branch and commit.

The objects the workspace lacks are found the way ``git push`` finds them: commits not
reachable from what the workspace already has (its refs that the local repository knows), and
of those commits' trees only the parts not already in the trees the workspace has. The first
time, the repository's own packfiles go as they are (a fresh clone is one pack, deltas and
all), and only what they lack follows; after that, new objects travel as one streamed pack
(:mod:`sync.pack`). Then the branch ref moves, HEAD follows, and the workspace index is reset
to the new commit's tree, so ``git status`` there shows the working-tree changes the file sync
brought, nothing more.

A commit made on the develop server that the local repository does not have is never lost:
before the branch moves away from it, it is kept as ``refs/devyard/kept/<branch>-<timestamp>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sync.pack import pack_stream
from sync.remote import RemoteWorkspace
from sync.report import GitReport as GitReport  # re-exported: they were defined here
from sync.report import head_in_sync as head_in_sync

if TYPE_CHECKING:
    import pygit2

DEFAULT_BRANCH = "main"
HAS_BATCH = 50_000  # object ids per /git/has question (the develop server takes up to 100,000)


def open_repository(root: Path) -> pygit2.Repository | None:
    """The repository whose working tree is ``root``, or None."""
    import pygit2
    from pygit2.enums import RepositoryOpenFlag

    if not (root / ".git").exists():
        return None
    try:
        return pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError:
        return None


class GitSync:
    """Pushes the local branch, HEAD and missing objects of one tree to its workspace."""

    def __init__(self, root: Path, remote: RemoteWorkspace) -> None:
        self.root = root
        self.remote = remote

    def push(self, *, dry_run: bool = False, stamp: str = "") -> GitReport:
        """Bring the workspace repository to the local HEAD (or say what that would take)."""
        repo = open_repository(self.root)
        if repo is None:
            return GitReport(skipped="not a git repository")
        report = _local_head(repo)
        refs = self.remote.git_refs()
        if refs is None:
            if dry_run:
                report.moved = report.head is not None
                report.objects = len(self._objects(repo, report.head, {})) if report.head else 0
                return report
            self.remote.git_init(report.branch or DEFAULT_BRANCH)
            refs = self.remote.git_refs() or {"refs": {}, "head": ""}
        if report.head is None:
            report.skipped = "no commit yet"
            return report
        remote_refs: dict[str, str] = refs["refs"]
        name = "HEAD" if report.detached else f"refs/heads/{report.branch}"
        if head_in_sync(report, refs):
            return report
        report.moved = True
        objects = self._objects(repo, report.head, remote_refs)
        report.objects = len(objects)
        if dry_run:
            return report
        if objects:
            self._send(repo, objects, first=not remote_refs)
        previous = remote_refs.get(name)
        if previous and previous != report.head and not _has(repo, previous):
            report.kept_ref = f"refs/devyard/kept/{report.branch or 'HEAD'}-{stamp}"
            self.remote.git_set_ref(report.kept_ref, previous)
        self.remote.git_set_ref(name, report.head, set_head=not report.detached, reset_index=True)
        return report

    def _objects(self, repo: pygit2.Repository, head: str, remote_refs: dict[str, str]) -> list[pygit2.Oid]:
        """The objects reachable from ``head`` that the workspace lacks."""
        import pygit2
        from pygit2.enums import SortMode

        if remote_refs and not self.remote.git_missing([head]):
            return []  # every push sends whole closures, so having the commit means having it all
        tips = [oid for oid in set(remote_refs.values()) if _has(repo, oid)]
        walker = repo.walk(pygit2.Oid(hex=head), SortMode.TOPOLOGICAL | SortMode.REVERSE)
        for tip in tips:
            walker.hide(pygit2.Oid(hex=tip))
        seen: set[pygit2.Oid] = set()
        for tip in tips:
            _tree_objects(repo[pygit2.Oid(hex=tip)].peel(pygit2.Commit).tree, seen, None)
        objects: list[pygit2.Oid] = []
        for commit in walker:
            objects.append(commit.id)
            _tree_objects(commit.tree, seen, objects)
        return objects

    def _send(self, repo: pygit2.Repository, objects: list[pygit2.Oid], *, first: bool) -> None:
        packs = sorted(Path(repo.path, "objects", "pack").glob("pack-*.pack")) if first else []
        packs = [pack for pack in packs if pack.with_suffix(".idx").exists()]
        if packs:
            for pack in packs:
                self.remote.git_send_pack(pack)
            missing = set()
            for start in range(0, len(objects), HAS_BATCH):
                missing.update(self.remote.git_missing([str(oid) for oid in objects[start : start + HAS_BATCH]]))
            objects = [oid for oid in objects if str(oid) in missing]
        objects = [oid for oid in objects if repo.odb.exists(oid)]  # a partial clone lacks some blobs
        if objects:
            self.remote.git_send_pack(pack_stream(repo, objects))


def local_head(root: Path) -> GitReport | None:
    """The branch and commit of the repository at ``root`` (None if it is none)."""
    repo = open_repository(root)
    return None if repo is None else _local_head(repo)


def _local_head(repo: pygit2.Repository) -> GitReport:
    if repo.head_is_unborn:
        target = str(repo.lookup_reference("HEAD").target)
        return GitReport(branch=target.removeprefix("refs/heads/"))
    if repo.head_is_detached:
        return GitReport(head=str(repo.head.target), detached=True)
    return GitReport(branch=repo.head.shorthand, head=str(repo.head.target))


def _has(repo: pygit2.Repository, oid: str) -> bool:
    import pygit2

    try:
        return bool(repo.odb.exists(pygit2.Oid(hex=oid)))
    except ValueError:
        return False


def _tree_objects(tree: pygit2.Tree, seen: set[pygit2.Oid], out: list[pygit2.Oid] | None) -> None:
    """Add ``tree`` and everything below it that is not in ``seen`` to ``seen`` (and ``out``)."""
    import pygit2

    if tree.id in seen:
        return
    seen.add(tree.id)
    if out is not None:
        out.append(tree.id)
    for entry in tree:
        if entry.filemode == pygit2.enums.FileMode.COMMIT:
            continue  # a submodule's commit lives in another repository
        if entry.type_str == "tree":
            _tree_objects(entry, seen, out)  # type: ignore[arg-type]
        elif entry.id not in seen:
            seen.add(entry.id)
            if out is not None:
                out.append(entry.id)
