"""sync.snapshot.matches on real trees: an unchanged tree matches, any change is found."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from control.wire.manifest import HashCache, Row, scan
from sync.snapshot import matches


def skip(rel: str) -> bool:
    return rel == "build/" or rel.endswith(".log")


def make_tree(root: Path, folders: int = 6, subfolders: int = 3, files: int = 3) -> Path:
    """Folders of files, with what the rules leave out, a ``.git`` and a link."""
    for f in range(folders):
        for s in range(subfolders):
            folder = root / f"pkg{f}" / f"mod{s}"
            folder.mkdir(parents=True)
            for n in range(files):
                (folder / f"file{n}.py").write_text(f"x = {f * s * n}\n")
    (root / "README.md").write_text("# tree\n")
    (root / "pkg0" / "debug.log").write_text("left out\n")
    (root / "build" / "out").mkdir(parents=True)
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "pkg0" / "link").symlink_to("mod0")
    return root


def record(root: Path) -> tuple[dict[str, bool], list[Row]]:
    """What a sync records of the tree: the paths left out and the stat rows, in walk order."""
    rows: list[Row] = []
    skipped: dict[str, bool] = {}
    scan(root, HashCache(), skip, rows=rows, skipped=skipped)
    return skipped, rows


def test_unchanged_tree_matches(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    assert matches(root, skipped, rows)


def append(path: Path) -> None:
    with path.open("a") as file:
        file.write("# more\n")


def change_deep_file(root: Path, rows: list[Row]) -> None:
    append(root / "pkg5" / "mod2" / "file2.py")


def change_first_file(root: Path, rows: list[Row]) -> None:
    append(root / next(row[0] for row in rows if stat.S_ISREG(row[1])))


def add_file(root: Path, rows: list[Row]) -> None:
    (root / "pkg3" / "mod2" / "new.py").write_text("")


def add_root_file(root: Path, rows: list[Row]) -> None:
    (root / "NEW.md").write_text("")


def remove_file(root: Path, rows: list[Row]) -> None:
    (root / "pkg4" / "mod1" / "file2.py").unlink()


def rename_folder(root: Path, rows: list[Row]) -> None:
    (root / "pkg2" / "mod1").rename(root / "pkg2" / "mod1b")


def rename_top_folder(root: Path, rows: list[Row]) -> None:
    (root / "pkg5").rename(root / "pkg9")


def file_to_folder(root: Path, rows: list[Row]) -> None:
    (root / "pkg2" / "mod0" / "file1.py").unlink()
    (root / "pkg2" / "mod0" / "file1.py").mkdir()


def folder_to_link(root: Path, rows: list[Row]) -> None:
    """The same files, but reached through a link: nothing below the root is followed."""
    elsewhere = root.parent / "elsewhere"
    (root / "pkg3").rename(elsewhere)
    (root / "pkg3").symlink_to(elsewhere)


def skipped_folder_to_file(root: Path, rows: list[Row]) -> None:
    shutil.rmtree(root / "build")
    (root / "build").write_text("now a file\n")


def skipped_file_to_folder(root: Path, rows: list[Row]) -> None:
    (root / "pkg0" / "debug.log").unlink()
    (root / "pkg0" / "debug.log").mkdir()


CHANGES = [
    change_deep_file,
    change_first_file,
    add_file,
    add_root_file,
    remove_file,
    rename_folder,
    rename_top_folder,
    file_to_folder,
    folder_to_link,
    skipped_folder_to_file,
    skipped_file_to_folder,
]


@pytest.mark.parametrize("change", CHANGES)
def test_any_change_is_found(tmp_path: Path, change: Callable[[Path, list[Row]], None]) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    change(root, rows)
    assert not matches(root, skipped, rows)


def test_a_new_entry_in_the_git_folder_or_a_left_out_one_changes_nothing(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    (root / ".git" / "index").write_text("")
    (root / "build" / "out" / "app.bin").write_text("")
    assert matches(root, skipped, rows)


def test_a_root_reached_through_a_link(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    (tmp_path / "link").symlink_to(root)
    skipped, rows = record(tmp_path / "link")
    assert matches(tmp_path / "link", skipped, rows)
    append(root / "pkg3" / "mod1" / "file0.py")
    assert not matches(tmp_path / "link", skipped, rows)


def test_rows_no_walk_meets_are_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    assert not matches(root, skipped, rows[:-1])
    assert not matches(root, skipped, [*rows, rows[-1]])
    assert not matches(root, skipped, rows[::-1])
    assert not matches(root, skipped, [])


def test_a_tree_without_folders(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    for n in range(50):
        (root / f"file{n}.txt").write_text(str(n))
    skipped, rows = record(root)
    assert matches(root, skipped, rows)
    (root / "file7.txt").write_text("changed")
    assert not matches(root, skipped, rows)


def test_rows_of_the_wrong_shape_mean_changed_not_a_crash(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    skipped, rows = record(root)
    for broken in ([(None, 0, 0, 0, 0)] * len(rows), [("pkg0", "16877", 0, 0, 0), *rows[1:]], [[5]] * len(rows)):
        assert not matches(root, skipped, broken)  # type: ignore[arg-type]
