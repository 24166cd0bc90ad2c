"""Git operations on the workspace repository, with pygit2 (imported only when git is used).

Plain functions over the workspace root that return JSON-ready dicts and raise :class:`ApiError`
for anything the client can fix. The caller runs them in a worker thread, one at a time.
"""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devserver.packindex import PackError, index_pack, write_index
from devserver.paths import GIT_DIR, BadPath, Workspace, split
from devserver.responses import ApiError

if TYPE_CHECKING:
    import pygit2

CHECKOUT_MODES = ("none", "safe", "force")
REGULAR_MODES = (0o100644, 0o100755)  # blob entries (symlinks and submodules are left as the tree has them)
HASH_CHUNK = 1024 * 1024
FALLBACK_NAME, FALLBACK_EMAIL = "devyard", "devyard@localhost"


def not_a_repository() -> ApiError:
    """The workspace has no git repository yet."""
    return ApiError(409, "not_a_repository", "The workspace is not a git repository; POST /git/init first.")


def open_repo(root: Path) -> pygit2.Repository:
    """The workspace's own repository (never one found in a parent directory)."""
    import pygit2
    from pygit2.enums import RepositoryOpenFlag

    if not (root / GIT_DIR).exists():
        raise not_a_repository()
    try:
        return pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError as exc:
        raise ApiError(409, "not_a_repository", f"The workspace's .git is not a usable repository ({exc}).") from None


def _git_error(exc: Exception) -> ApiError:
    return ApiError(409, "git_error", f"Git refused the operation: {exc}.")


# ------------------------------------------------------------------ reading


def status(root: Path) -> dict[str, Any]:
    """Branch, HEAD and the changed files (staged and not)."""
    if not (root / GIT_DIR).exists():
        return {"initialized": False, "branch": None, "head": None, "detached": False, "files": []}
    repo = open_repo(root)
    files: list[dict[str, Any]] = []
    for path, flags in sorted(repo.status(untracked_files="all").items()):
        files.extend({"path": path, "status": name, "staged": staged} for name, staged in _status_names(flags))
    return {"initialized": True, **_head(repo), "files": files}


def _status_names(flags: int) -> list[tuple[str, bool]]:
    from pygit2.enums import FileStatus

    if flags & FileStatus.CONFLICTED:
        return [("conflicted", False)]
    names = [
        (FileStatus.INDEX_NEW, "added", True),
        (FileStatus.INDEX_MODIFIED, "modified", True),
        (FileStatus.INDEX_DELETED, "deleted", True),
        (FileStatus.INDEX_RENAMED, "renamed", True),
        (FileStatus.INDEX_TYPECHANGE, "typechange", True),
        (FileStatus.WT_NEW, "untracked", False),
        (FileStatus.WT_MODIFIED, "modified", False),
        (FileStatus.WT_DELETED, "deleted", False),
        (FileStatus.WT_RENAMED, "renamed", False),
        (FileStatus.WT_TYPECHANGE, "typechange", False),
        (FileStatus.WT_UNREADABLE, "unreadable", False),
    ]
    return [(name, staged) for flag, name, staged in names if flags & flag]


def _head(repo: pygit2.Repository) -> dict[str, Any]:
    if repo.head_is_unborn:
        target = repo.lookup_reference("HEAD").target
        branch = str(target).removeprefix("refs/heads/")
        return {"branch": branch, "head": None, "detached": False}
    if repo.head_is_detached:
        return {"branch": None, "head": str(repo.head.target), "detached": True}
    return {"branch": repo.head.shorthand, "head": str(repo.head.target), "detached": False}


def _commit_json(commit: pygit2.Commit) -> dict[str, Any]:
    message = commit.message
    return {
        "oid": str(commit.id),
        "summary": message.split("\n", 1)[0],
        "message": message,
        "author": commit.author.name,
        "email": commit.author.email,
        "time": datetime.fromtimestamp(commit.author.time, UTC).isoformat().replace("+00:00", "Z"),
    }


def check_ref_argument(ref: str) -> None:
    """Refuse a ref that starts with '-': git tools would read it as an option, and no branch,
    tag or commit id can start with one."""
    if ref.startswith("-"):
        raise ApiError(400, "bad_ref_name", f"{ref[:100]!r} is not a valid ref: refs cannot start with '-'.")


def _resolve_commit(repo: pygit2.Repository, ref: str) -> pygit2.Commit:
    import pygit2

    check_ref_argument(ref)

    try:
        return repo.revparse_single(ref).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        raise ApiError(404, "unknown_ref", f"There is no commit called {ref!r} in the repository.") from None


def log(root: Path, ref: str, limit: int) -> dict[str, Any]:
    """Up to ``limit`` commits reachable from ``ref``, newest first."""
    from pygit2.enums import SortMode

    repo = open_repo(root)
    if ref == "HEAD" and repo.head_is_unborn:
        return {"commits": []}
    start = _resolve_commit(repo, ref)
    commits: list[dict[str, Any]] = []
    for commit in repo.walk(start.id, SortMode.TOPOLOGICAL | SortMode.TIME):
        if len(commits) >= limit:
            break
        commits.append(_commit_json(commit))
    return {"commits": commits}


def diff(root: Path, cached: bool) -> dict[str, Any]:
    """The working tree against the index, or (``cached``) the index against HEAD."""
    repo = open_repo(root)
    if not cached:
        changes = repo.diff()
    elif repo.head_is_unborn:
        empty = repo.get(repo.TreeBuilder().write())
        changes = repo.index.diff_to_tree(empty)  # type: ignore[arg-type]
    else:
        changes = repo.diff("HEAD", cached=True)
    stats = changes.stats
    return {
        "patch": changes.patch or "",
        "files_changed": stats.files_changed,
        "insertions": stats.insertions,
        "deletions": stats.deletions,
    }


def refs(root: Path) -> dict[str, Any]:
    """Every reference resolved to an object id, and where HEAD points."""
    import pygit2

    repo = open_repo(root)
    resolved: dict[str, str] = {}
    for name in repo.listall_references():
        try:
            resolved[name] = str(repo.lookup_reference(name).resolve().target)
        except (KeyError, pygit2.GitError):
            continue  # a symbolic ref to nothing (e.g. a remote's HEAD without the branch)
    # A symbolic HEAD names its branch (even an unborn one); a detached HEAD is an object id.
    return {"refs": resolved, "head": str(repo.lookup_reference("HEAD").target)}


def has(root: Path, oids: list[str]) -> dict[str, Any]:
    """Which of ``oids`` the repository does not have."""
    repo = open_repo(root)
    return {"missing": [oid for oid in oids if not repo.odb.exists(_oid(oid))]}


def _oid(text: str) -> pygit2.Oid:
    import pygit2

    if len(text) != 40 or not all(c in "0123456789abcdef" for c in text.lower()):
        raise ApiError(400, "bad_oid", f"{text!r} is not a full 40-digit object id.")
    return pygit2.Oid(hex=text)


# ------------------------------------------------------------------ changing


def init(root: Path, branch: str) -> dict[str, Any]:
    """Create the repository if there is none (idempotent)."""
    import pygit2

    if not pygit2.reference_is_valid_name(f"refs/heads/{branch}"):
        raise ApiError(400, "bad_ref_name", f"{branch!r} is not a valid branch name.")
    created = not (root / GIT_DIR).exists()
    if created:
        pygit2.init_repository(str(root), initial_head=branch)
    return {"created": created, **_head(open_repo(root))}


def _strategy(force: bool) -> Any:
    from pygit2.enums import CheckoutStrategy

    return CheckoutStrategy.FORCE if force else CheckoutStrategy.SAFE


def _checkout_tree(repo: pygit2.Repository, commit: pygit2.Commit, force: bool) -> None:
    import pygit2

    try:
        repo.checkout_tree(commit, strategy=_strategy(force))  # type: ignore[no-untyped-call]
    except pygit2.GitError as exc:
        raise ApiError(
            409,
            "local_changes",
            f"Local changes would be overwritten by the checkout ({exc}); commit them or use force.",
        ) from None


def checkout(root: Path, ref: str, create: bool, force: bool) -> dict[str, Any]:
    """Switch to a branch (optionally creating it at HEAD) or detach at a commit."""
    import pygit2

    check_ref_argument(ref)
    repo = open_repo(root)
    if create:
        if not pygit2.reference_is_valid_name(f"refs/heads/{ref}"):
            raise ApiError(400, "bad_ref_name", f"{ref!r} is not a valid branch name.")
        if repo.branches.local.get(ref) is not None:
            raise ApiError(409, "branch_exists", f"The branch {ref!r} already exists.")
        try:
            if not repo.head_is_unborn:
                repo.branches.local.create(ref, repo.head.peel(pygit2.Commit))
            repo.set_head(f"refs/heads/{ref}")
        except (ValueError, pygit2.GitError) as exc:  # libgit2's own rules on branch names
            raise ApiError(400, "bad_ref_name", f"{ref!r} is not a valid branch name ({exc}).") from None
        return _head(repo)
    branch = repo.branches.local.get(ref)
    if branch is not None:
        _checkout_tree(repo, branch.peel(pygit2.Commit), force)
        repo.set_head(branch.name)
    else:
        commit = _resolve_commit(repo, ref)
        _checkout_tree(repo, commit, force)
        repo.set_head(commit.id)
    return _head(repo)


def commit(
    root: Path,
    message: str,
    stage_all: bool,
    paths: list[str] | None,
    author_name: str | None,
    author_email: str | None,
) -> dict[str, Any]:
    """Commit the index, after staging ``paths`` and (``stage_all``) every tracked change."""
    import pygit2
    from pygit2.enums import FileStatus

    repo = open_repo(root)
    index = repo.index
    wanted = [_pathspec(path) for path in paths or []]
    changes = repo.status(untracked_files="no")
    if wanted:
        try:
            index.add_all(wanted)  # type: ignore[arg-type]
        except pygit2.GitError as exc:
            raise _git_error(exc) from None
    for path, flags in changes.items():
        chosen = stage_all or any(path == p or path.startswith(p + "/") for p in wanted)
        if not chosen:
            continue
        if flags & FileStatus.WT_DELETED:
            index.remove(path)
        elif flags & (FileStatus.WT_MODIFIED | FileStatus.WT_TYPECHANGE):
            index.add(path)
    index.write()
    tree = index.write_tree()
    parents = [] if repo.head_is_unborn else [repo.head.target]
    previous = repo.get(parents[0]).peel(pygit2.Tree).id if parents else repo.TreeBuilder().write()  # type: ignore[union-attr]
    if tree == previous:
        raise ApiError(409, "nothing_to_commit", "There are no staged changes to commit.")
    author = _signature(repo, author_name, author_email)
    oid = repo.create_commit("HEAD", author, author, message, tree, parents)
    return {"oid": str(oid), **_head(repo)}


def _pathspec(path: str) -> str:
    try:
        parts = split(path)
    except BadPath as exc:
        raise ApiError(400, "bad_path", exc.message, path=path) from None
    if parts[0] == GIT_DIR:
        raise ApiError(400, "bad_path", "Paths under .git cannot be committed.", path=path)
    return "/".join(parts)


def _signature(repo: pygit2.Repository, name: str | None, email: str | None) -> pygit2.Signature:
    import pygit2

    if name and email:
        return pygit2.Signature(name, email)
    try:
        default = repo.default_signature
        return pygit2.Signature(name or default.name, email or default.email)
    except (KeyError, pygit2.GitError):
        return pygit2.Signature(name or FALLBACK_NAME, email or FALLBACK_EMAIL)


def receive_pack(root: Path, pack: Path, body_sha1: bytes | None = None) -> dict[str, Any]:
    """Index a received packfile and install it in the object database; ``pack`` is consumed.

    ``body_sha1``: the SHA-1 of the pack without its checksum, if it was hashed as it arrived.
    """
    import pygit2

    repo = open_repo(root)

    def lookup(raw: bytes) -> tuple[int, bytes] | None:
        try:
            kind, data = repo.odb.read(pygit2.Oid(raw=raw))
        except KeyError:
            return None
        return int(kind), data

    pack_dir = root / GIT_DIR / "objects" / "pack"
    try:
        indexed = index_pack(pack, lookup, body_sha1=body_sha1)
        name = f"pack-{indexed.checksum.hex()}"
        if not (pack_dir / f"{name}.idx").exists():
            temp_index = pack.with_suffix(".idx")
            write_index(indexed, temp_index)
            os.chmod(pack, 0o444)
            os.chmod(temp_index, 0o444)
            # The .idx goes last: libgit2 discovers packs by their index.
            os.replace(pack, pack_dir / f"{name}.pack")
            os.replace(temp_index, pack_dir / f"{name}.idx")
    except PackError as exc:
        raise ApiError(400, "bad_pack", str(exc)) from None
    finally:
        pack.unlink(missing_ok=True)
        pack.with_suffix(".idx").unlink(missing_ok=True)
    return {"objects": len(indexed.objects)}


def set_ref(
    root: Path, name: str, target: str, set_head: bool, checkout_mode: str, reset_index: bool = False
) -> dict[str, Any]:
    """Point ``name`` at ``target`` (which must exist), optionally make it HEAD and check it out.

    ``name`` ``"HEAD"`` detaches HEAD at ``target``. ``reset_index`` makes the index match the
    target's tree without touching the working tree (``git reset --mixed``): after a file sync
    has already written the files, ``git status`` then shows exactly the working-tree changes.
    """
    import pygit2

    check_ref_argument(name)
    check_ref_argument(target)
    detach = name == "HEAD"
    if not detach and (not name.startswith("refs/") or not pygit2.reference_is_valid_name(name)):
        raise ApiError(400, "bad_ref_name", f"{name!r} is not a valid full reference name (refs/... or HEAD).")
    if checkout_mode not in CHECKOUT_MODES:
        raise ApiError(400, "bad_request", "'checkout' must be one of none, safe or force.")
    repo = open_repo(root)
    oid = _oid(target)
    obj = repo.get(oid)
    if obj is None:
        raise ApiError(
            409, "missing_object", f"The object {target} is not in the repository; send it with /git/objects first."
        )
    commit: pygit2.Commit | None = None
    if detach or reset_index or checkout_mode != "none" or (set_head and name.startswith("refs/heads/")):
        try:
            commit = obj.peel(pygit2.Commit)
        except (ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            raise ApiError(409, "not_a_commit", f"The object {target} is not a commit.") from None
        if checkout_mode != "none":
            # Before moving anything: the checkout compares against the current HEAD.
            _checkout_tree(repo, commit, checkout_mode == "force")
    if detach:
        repo.set_head(oid)
    else:
        repo.references.create(name, oid, force=True)
        if set_head:
            repo.set_head(name)
    if reset_index and commit is not None:
        _reset_index(repo, root, commit)
    return {"name": name, "target": str(oid), **_head(repo)}


def _reset_index(repo: pygit2.Repository, root: Path, commit: pygit2.Commit) -> None:
    """Make the index the commit's tree, with fresh stat data where the file already matches.

    ``read_tree`` keeps the stat data of entries whose path and object are unchanged, so only
    the entries that changed are checked: a file whose content is already the new blob gets its
    stat data recorded (``git update-index --refresh``), so later status calls need not hash it.
    Anything else keeps the tree's entry without stat data and shows as modified.
    """
    import pygit2

    workspace = Workspace(root)
    folders: dict[str, str | None] = {}  # real path of each parent folder, None if outside

    def real_folder(folder: str) -> str | None:
        if folder not in folders:
            try:
                folders[folder] = workspace.resolve(folder, allow_root=True)
            except BadPath:  # a symlink leads outside: never read through it
                folders[folder] = None
        return folders[folder]

    index = repo.index
    before = {entry.path: entry.id for entry in index}
    index.read_tree(commit.tree)
    for entry in list(index):
        if before.get(entry.path) == entry.id or entry.mode not in REGULAR_MODES:
            continue
        folder, _, name = entry.path.rpartition("/")
        parent = real_folder(folder)
        if parent is None:
            continue
        full = os.path.join(parent, name)
        try:
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode) or blob_id(full, st.st_size) != str(entry.id):
                continue
            if _stat_key(os.lstat(full)) != _stat_key(st):
                continue  # changed while it was hashed: leave it to status
            _add_with_stat(index, entry, st)
        except (OSError, pygit2.GitError):
            continue
    index.write()


def blob_id(path: str, size: int) -> str | None:
    """The git object id the file at ``path`` would have as a blob (``git hash-object``, no
    filters), or None if it is not ``size`` bytes long (it changed) or is now a link.

    OpenSSL's SHA-1 through hashlib: libgit2's collision-detecting SHA-1 (``pygit2.hashfile``)
    took 0.83 s for a 10,000-file / 210 MB checkout here, this 0.21 s. A collision would only
    make a file the user wrote count as clean in their own workspace's index.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        digest = hashlib.sha1(b"blob %d\0" % size)
        seen = 0
        while chunk := os.read(fd, HASH_CHUNK):
            digest.update(chunk)
            seen += len(chunk)
            if seen > size:
                return None
    finally:
        os.close(fd)
    return digest.hexdigest() if seen == size else None


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _add_with_stat(index: pygit2.Index, entry: pygit2.IndexEntry, st: os.stat_result) -> None:
    """Put ``entry`` in the index with the file's stat data, without reading the file again.

    pygit2 can only add an entry without stat data, or add a path (which reads, hashes and
    writes the blob again: a third of a millisecond per file, seconds for a big tree), so the
    libgit2 entry is filled in through pygit2's own cffi bindings; should those ever change,
    adding by path is the slow but equivalent fallback.
    """
    try:
        from pygit2.errors import check_error
        from pygit2.ffi import C

        centry, _path = entry._to_c()
        centry.ctime.seconds, centry.ctime.nanoseconds = divmod(st.st_ctime_ns, 1_000_000_000)
        centry.mtime.seconds, centry.mtime.nanoseconds = divmod(st.st_mtime_ns, 1_000_000_000)
        # Git keeps the low 32 bits of these (its index format has no room for more).
        centry.dev, centry.ino = st.st_dev & 0xFFFFFFFF, st.st_ino & 0xFFFFFFFF
        centry.uid, centry.gid = st.st_uid & 0xFFFFFFFF, st.st_gid & 0xFFFFFFFF
        centry.file_size = st.st_size & 0xFFFFFFFF
        check_error(C.git_index_add(index._index, centry))
    except (ImportError, AttributeError, TypeError, OverflowError):
        index.add(entry.path)
        if index[entry.path].id != entry.id:  # it changed meanwhile: never stage that change
            index.add(entry)
