"""tui.toml: key bindings and theme, validated with one clear sentence per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.actions import ACTIONS, SCOPES
from tui.config import TuiConfigProblem, key_problem, load

THEMES = frozenset({"textual-dark", "textual-light", "nord"})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tui.toml"
    path.write_text(text)
    return path


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    config = load(tmp_path / "nope.toml", THEMES)
    assert config.theme == "textual-dark" and config.keymap == {}


def test_theme_and_keys_are_read(tmp_path: Path) -> None:
    config = load(write(tmp_path, 'theme = "light"\n[keys]\n"run.cancel" = "C"\n"log.search" = "ctrl+f, s"\n'), THEMES)
    assert config.theme == "textual-light"
    assert config.keymap == {"run.cancel": "C", "log.search": "ctrl+f,s"}
    assert load(write(tmp_path, 'theme = "nord"\n'), THEMES).theme == "nord"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[keys]\n"run.cancle" = "x"\n', "there is no action 'run.cancle'"),
        ('[keys]\n"cancel" = "x"\n', "did you mean"),
        ('[keys]\n"run.cancel" = "ctrl+shiftt+x"\n', "'shiftt' is not a modifier"),
        ('[keys]\n"run.cancel" = "bogus_key"\n', "'bogus_key' is not a key name"),
        ('[keys]\n"run.cancel" = "x,,y"\n', "a key is empty"),
        ('[keys]\n"run.cancel" = 3\n', "must be a string"),
        ('[keys]\n"run.cancel" = "s"\n', "'s' would be bound to both log.search and run.cancel in the run view"),
        ('theme = "neon"\n', "there is no theme 'neon'"),
        ("colour = 1\n", "unknown setting 'colour'"),
        ("keys = 3\n", "'keys' must be a table"),
        ("[keys\n", "is not valid TOML"),
    ],
)
def test_mistakes_are_one_sentence(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(TuiConfigProblem) as caught:
        load(write(tmp_path, text), THEMES)
    message = str(caught.value)
    assert fragment in message, message
    assert str(tmp_path / "tui.toml") in message and "\n" not in message


def test_default_keys_are_valid_and_every_action_has_a_scope() -> None:
    for spec in ACTIONS:
        assert spec.scope in SCOPES
        for key in spec.keys.split(","):
            assert key_problem(key) is None, (spec.id, key)
    assert len({spec.id for spec in ACTIONS}) == len(ACTIONS)


def test_yard_refuses_a_broken_tui_toml(tmp_path: Path) -> None:
    """`yard` says what is wrong and stops before taking over the terminal."""
    import os
    import sys

    from tests.tui.with_terminal import run_with_terminal

    config = Path(os.environ["XDG_CONFIG_HOME"]) / "devyard"
    config.mkdir(parents=True, exist_ok=True)
    (config / "tui.toml").write_text('[keys]\n"run.cancle" = "x"\n')
    env = {**os.environ, "DEVYARD_URL": "http://127.0.0.1:9", "DEVYARD_TOKEN": "dy_x"}
    returncode, stderr = run_with_terminal([str(Path(sys.executable).parent / "yard"), "tui"], env=env)
    assert returncode == 1
    assert "there is no action 'run.cancle'" in stderr and "Traceback" not in stderr
