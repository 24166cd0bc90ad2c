"""Which files a sync leaves out: git's rules exactly, plus .yardignore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sync.ignore import IgnoreRules
from sync.local import LocalTree
from sync.state import LocalHashCache
from tests.sync.trees import commit_index, repository, write

ROOT = Path(__file__).resolve().parents[2]


def synced_paths(root: Path, scratch: Path) -> set[str]:
    return set(LocalTree(root, IgnoreRules(root, scratch), LocalHashCache()).scan())


def test_every_ignore_source_and_the_tracked_exception(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = repository(root, {"data/keep.csv": "tracked before the rule\n"})
    write(
        root,
        {
            ".gitignore": "*.log\n/top-only.txt\n!important.log\n*.csv\n",
            "sub/.gitignore": "build/\n*.tmp\n",
            "sub/build/out.o": "x",
            "sub/a.tmp": "x",
            "sub/code.py": "x",
            "deep/top-only.txt": "kept: the rule is anchored to the root",
            "top-only.txt": "x",
            "debug.log": "x",
            "important.log": "kept by negation",
            "data/new.csv": "untracked, ignored",
            "secret.key": "x",
            "scratch/notes.md": "x",
            "vendor/lib/a.js": "x",
            "vendor/lib/b.js": "x",
            "nested/.git/config": "a nested repository's own files",
            "nested/file.txt": "x",
            ".devyard-tmp-123": "the develop server's temporary name",
        },
    )
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("*.key\n")
    (root / ".yardignore").write_text("scratch/\nvendor/\n!vendor/lib/\nvendor/lib/b.js\n")
    assert synced_paths(root, tmp_path / "state") == {
        ".gitignore",
        ".yardignore",
        "data",
        "data/keep.csv",  # tracked: synced even though *.csv now matches it
        "deep",
        "deep/top-only.txt",
        "important.log",
        "nested",
        "nested/file.txt",
        "sub",
        "sub/.gitignore",
        "sub/code.py",
    }
    # Rules are re-read when they change: un-ignoring makes files appear.
    (root / ".yardignore").write_text("scratch/\n")
    (root / ".git" / "info" / "exclude").write_text("")
    rules = IgnoreRules(root, tmp_path / "state")
    assert not rules.skip("secret.key") and not rules.skip("vendor/") and rules.skip("scratch/")
    # A file that stops being tracked is ignored again.
    repo.index.remove("data/keep.csv")
    repo.index.write()
    commit_index(repo, "untrack")
    (root / "data" / "keep.csv").write_text("still here\n")
    assert IgnoreRules(root, tmp_path / "state").skip("data/keep.csv")


def test_a_plain_folder_gets_the_same_rules(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    write(root, {".gitignore": "*.pyc\n", "a.py": "x", "a.pyc": "x", "cache/x": "x", ".yardignore": "cache/\n"})
    assert synced_paths(root, tmp_path / "state") == {".gitignore", ".yardignore", "a.py"}
    assert not (root / ".git").exists()  # nothing was written into the tree


def test_the_global_excludes_file_counts(tmp_path: Path) -> None:
    """libgit2 finds the global excludes through $HOME / $XDG_CONFIG_HOME once per process,
    so this runs in a fresh interpreter with its own home."""
    home = tmp_path / "home"
    write(home, {".config/git/ignore": "*.swp\n.idea/\n"})
    root = tmp_path / "repo"
    repository(root, {"a.txt": "x"})
    write(root, {"a.txt.swp": "x", ".idea/workspace.xml": "x", "b.txt": "x"})
    script = (
        "import json, sys; from pathlib import Path\n"
        "from sync.ignore import IgnoreRules\n"
        "from sync.local import LocalTree\n"
        "from sync.state import LocalHashCache\n"
        "root = Path(sys.argv[1])\n"
        "tree = LocalTree(root, IgnoreRules(root, Path(sys.argv[2])), LocalHashCache())\n"
        "print(json.dumps(sorted(tree.scan())))\n"
    )
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(root), str(tmp_path / "state")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["a.txt", "b.txt"]
