"""runner.scratch.remove_run_folder on real trees: everything goes, links are never followed,
read-only folders are no obstacle to their owner, and what cannot go is said in one sentence."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.scratch import remove_run_folder

NOBODY = 65534


def fill(folder: Path) -> Path:
    (folder / "target" / "deep" / "er").mkdir(parents=True)
    (folder / "target" / "deep" / "er" / "out.bin").write_bytes(b"x" * 1000)
    (folder / "notes.txt").write_text("hi\n")
    (folder / ".hidden").mkdir()
    (folder / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(folder / "fifo")
    return folder


def test_removes_the_folder_and_everything_in_it(tmp_path: Path) -> None:
    folder = fill(tmp_path / "runs" / "7")
    assert remove_run_folder(folder) is None
    assert not folder.exists() and (tmp_path / "runs").is_dir()


def test_a_missing_folder_is_not_an_error(tmp_path: Path) -> None:
    assert remove_run_folder(tmp_path / "runs" / "8") is None


def test_links_are_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "precious.txt").write_text("mine\n")
    folder = fill(tmp_path / "runs" / "9")
    (folder / "to-folder").symlink_to(outside)
    (folder / "target" / "to-file").symlink_to(outside / "keep" / "precious.txt")
    (folder / "dangling").symlink_to(tmp_path / "nowhere")
    assert remove_run_folder(folder) is None
    assert not folder.exists()
    assert (outside / "keep" / "precious.txt").read_text() == "mine\n"


def test_the_run_folder_itself_as_a_link_is_left_alone(tmp_path: Path) -> None:
    outside = fill(tmp_path / "outside")
    (tmp_path / "runs").mkdir()
    link = tmp_path / "runs" / "10"
    link.symlink_to(outside)
    kept = remove_run_folder(link)
    assert kept is not None and kept.startswith(f"The run folder {link} was left in place")
    assert (outside / "notes.txt").exists() and link.is_symlink()


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's own temporary folders are root's, 0o700)."""
    base = Path(tempfile.mkdtemp(prefix="devyard-scratch-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def _as_nobody(folder: Path) -> str | None:
    """remove_run_folder(folder) as an unprivileged user (root ignores permissions, so only a
    user shows how read-only folders are handled): in a forked child that drops to ``nobody``
    (the venv's interpreter may sit where nobody can run it), answering through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # os-level calls and our function only, and out through os._exit
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            os.write(write_end, (remove_run_folder(folder) or "").encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        said = answer.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return said or None  # a sentence, or nothing when the folder is gone


def test_read_only_folders_of_the_owner_are_removed_too(shared: Path) -> None:
    """Go's module cache is read-only (0o555 folders, 0o444 files); a folder may even be
    unreadable (0o000)."""
    folder = fill(shared / "11")
    cache = folder / "pkg" / "mod" / "example.com@v1"
    cache.mkdir(parents=True)
    (cache / "go.mod").write_text("module example.com\n")
    (cache / "locked").mkdir()
    (cache / "locked" / "inside").write_text("x\n")
    if os.geteuid() == 0:
        for path in [shared, *shared.rglob("*")]:
            os.lchown(path, NOBODY, NOBODY)
    (cache / "go.mod").chmod(0o444)
    (cache / "locked").chmod(0o000)
    for path in (cache, cache.parent, cache.parent.parent):
        path.chmod(0o555)
    assert _as_nobody(folder) is None
    assert not folder.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a file of another user")
def test_what_cannot_be_removed_is_said_in_one_sentence(shared: Path) -> None:
    folder = fill(shared / "12")
    (folder / "root-only").mkdir()
    (folder / "root-only" / "file").write_text("x\n")
    for path in [folder, *folder.rglob("*")]:
        if "root-only" not in path.relative_to(folder).parts:
            os.lchown(path, NOBODY, NOBODY)
    os.chmod(folder / "root-only", 0o755)  # root's, and nobody may not write into it
    said = _as_nobody(folder)
    assert said is not None and said.startswith(
        f"The run folder {folder} was not removed completely: Permission denied"
    )
    assert "\n" not in said
    assert (folder / "root-only" / "file").exists()


REPO = Path(__file__).resolve().parents[2]
REMOVE = (
    f"{sys.executable} -c 'import sys; from pathlib import Path; from runner.scratch import remove_run_folder;"
    " print(remove_run_folder(Path(sys.argv[1])))'"
)


def _removed_after(mounts: str, folder: Path, then: str = "") -> str:
    """What remove_run_folder(folder) says after the sh commands ``mounts``, run in a mount
    namespace of its own so the test's mounts vanish with it (followed by ``then``'s output)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mounting needs root and unshare")
    script = f"{mounts}; cd {REPO}; {REMOVE} {folder}; {then or 'true'}"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_mount_inside_the_folder_is_never_entered(tmp_path: Path) -> None:
    """A bind mount of the same file system has the same device number: only the mount table
    shows it. What is mounted there belongs to someone else."""
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "file").write_text("mine\n")
    (outside / "keep").chmod(0o555)
    folder = fill(tmp_path / "runs" / "13")
    (folder / "deep" / "mnt").mkdir(parents=True)
    said = _removed_after(f"mount --bind {outside} {folder}/deep/mnt", folder)
    assert (
        said
        == f"The run folder {folder} was not removed completely: deep/mnt is another file system or a mount point.\n"
    )
    assert (outside / "keep" / "file").read_text() == "mine\n"
    assert stat.S_IMODE((outside / "keep").stat().st_mode) == 0o555
    assert sorted(p.name for p in folder.iterdir()) == ["deep"]  # the rest is gone


def test_a_folder_that_is_a_mount_point_is_emptied_quietly(tmp_path: Path) -> None:
    """A container's run folder is its mount point: emptied, it stays for the agent to remove."""
    folder = fill(tmp_path / "runs" / "14")
    assert _removed_after(f"mount --bind {folder} {folder}", folder, then=f"ls -A {folder} | wc -l") == "None\n0\n"


def test_a_file_mounted_inside_the_folder_is_left_alone_and_the_rest_goes(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    folder = fill(tmp_path / "runs" / "15")
    (folder / "bound").write_text("")
    (folder / "z").write_text("after it\n")
    said = _removed_after(f"mount --bind {outside} {folder}/bound", folder)
    assert (
        said == f"The run folder {folder} was not removed completely: bound is another file system or a mount point.\n"
    )
    assert outside.read_text() == "mine\n"
    assert sorted(p.name for p in folder.iterdir()) == ["bound"]


def test_a_mount_point_whose_name_is_not_utf8_breaks_nothing(tmp_path: Path) -> None:
    folder = fill(tmp_path / "runs" / "16")
    odd = os.fsencode(tmp_path) + b"/odd\xff name"
    os.mkdir(odd)
    inner = os.fsencode(folder) + b"/in\xfene r"
    os.mkdir(inner)
    said = _removed_after(
        f"mount -t tmpfs none \"$(printf '{os.fsdecode(odd)}')\"; mount -t tmpfs none \"$(printf '{os.fsdecode(inner)}')\"",
        folder,
    )
    assert said.startswith(f"The run folder {folder} was not removed completely: in\\udcfene r is another")
