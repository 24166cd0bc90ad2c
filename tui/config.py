"""The TUI's own settings: ``$XDG_CONFIG_HOME/devyard/tui.toml`` (key bindings and theme).

```toml
theme = "light"            # "dark" (default), "light", or any Textual theme name

[keys]                     # action id = keys, comma-separated; `?` in the TUI lists the ids
"run.cancel" = "C"
"log.search" = "ctrl+f,s"
```

Every problem (an unknown action, a key Textual cannot name, one key bound to two actions in
the same view, a theme that does not exist) is one sentence naming the file, so ``yard`` can
say it and stop instead of starting with surprising keys.
"""

from __future__ import annotations

import os
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from tui.actions import ACTIONS, BY_ID, SCOPES

THEMES = {"dark": "textual-dark", "light": "textual-light"}
MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})
# The views and the scopes whose keys are live in them at once (the focused widget's first).
VIEWS: dict[str, tuple[str, ...]] = {
    "the dashboard's runs": ("runs", "table", "dashboard", "app"),
    "the dashboard's develop servers": ("devservers", "table", "dashboard", "app"),
    "the dashboard's jobs": ("jobs", "table", "dashboard", "app"),
    "the dashboard's schedules": ("schedules", "table", "dashboard", "app"),
    "the run view": ("log", "run", "app"),
    "the develop server view": ("devserver", "app"),
}


class TuiConfigProblem(Exception):
    """tui.toml cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class TuiConfig:
    """What tui.toml says, validated."""

    theme: str = "textual-dark"
    """The Textual theme to start with."""
    keymap: dict[str, str] = field(default_factory=dict)
    """Action id → keys (Textual names, comma-separated) for the actions the user rebound."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "devyard" / "tui.toml"


def load(path: Path | None = None, available_themes: frozenset[str] | None = None) -> TuiConfig:
    """Read and validate tui.toml; a missing file means the defaults."""
    path = path or config_path()
    if not path.exists():
        return TuiConfig()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TuiConfigProblem(f"{path} is not valid TOML ({exc}).") from exc
    except OSError as exc:
        raise TuiConfigProblem(f"Cannot read {path} ({exc.strerror}).") from exc
    unknown = sorted(set(data) - {"theme", "keys"})
    if unknown:
        raise TuiConfigProblem(f"{path}: unknown setting '{unknown[0]}'; only 'theme' and a [keys] table are read.")
    theme = _theme(path, data.get("theme", "dark"), available_themes)
    raw_keys = data.get("keys", {})
    if not isinstance(raw_keys, dict):
        raise TuiConfigProblem(f"{path}: 'keys' must be a table of action = \"keys\".")
    keymap = {action: _keys(path, action, value) for action, value in raw_keys.items()}
    _check_conflicts(path, keymap)
    return TuiConfig(theme=theme, keymap=keymap)


def _theme(path: Path, value: object, available: frozenset[str] | None) -> str:
    if not isinstance(value, str):
        raise TuiConfigProblem(f'{path}: \'theme\' must be a string such as "dark" or "light".')
    name = THEMES.get(value, value)
    if available is not None and name not in available:
        raise TuiConfigProblem(
            f'{path}: there is no theme \'{value}\'; use "dark", "light" or one of {", ".join(sorted(available))}.'
        )
    return name


def _keys(path: Path, action: object, value: object) -> str:
    if action not in BY_ID:
        close = [a for a in BY_ID if isinstance(action, str) and action.split(".")[-1] in a]
        hint = f" (did you mean {close[0]}?)" if close else "; press ? in the TUI to see the action ids"
        raise TuiConfigProblem(f"{path}: there is no action '{action}'{hint}.")
    if not isinstance(value, str) or not value.strip():
        raise TuiConfigProblem(f'{path}: the keys of {action} must be a string such as "c" or "ctrl+c,x".')
    keys = [key.strip() for key in value.split(",")]
    for key in keys:
        problem = key_problem(key)
        if problem:
            raise TuiConfigProblem(f'{path}: {action} = "{value}": {problem}.')
    return ",".join(keys)


def key_problem(key: str) -> str | None:
    """Why Textual could not match ``key`` (None when it can)."""
    if not key:
        return "a key is empty (two commas in a row?)"
    *modifiers, name = key.split("+") if len(key) > 1 else [key]
    bad = [m for m in modifiers if m not in MODIFIERS]
    if bad:
        return f"'{bad[0]}' is not a modifier (use ctrl, shift, alt, meta or super)"
    if len(name) == 1:
        return None if name.isprintable() else f"'{key}' is not a printable key"
    if name in _key_names():
        return None
    try:
        # Textual names punctuation by its Unicode name: "question_mark", "colon", "slash".
        unicodedata.lookup(name.replace("_", " ").upper())
        return None
    except KeyError:
        return f"'{name}' is not a key name Textual knows (e.g. enter, escape, f5, ctrl+x, question_mark)"


def _key_names() -> frozenset[str]:
    import string

    from textual.keys import Keys, _character_to_key

    names = {key.value for key in Keys}
    names |= {name.split("+")[-1] for name in names}
    # What Textual calls the printable characters: "slash", "question_mark", "left_square_bracket"...
    names |= {_character_to_key(char) for char in string.printable if char.isprintable()}
    return frozenset(names | {"space", "enter", "escape", "tab", "backspace", "delete"})


def _check_conflicts(path: Path, keymap: dict[str, str]) -> None:
    """Refuse one key for two actions live in the same view, when the user made it so."""
    effective = {spec.id: (keymap.get(spec.id) or spec.keys) for spec in ACTIONS}
    by_scope: dict[str, list[str]] = {scope: [] for scope in SCOPES}
    for spec in ACTIONS:
        by_scope[spec.scope].append(spec.id)
    for view, scopes in VIEWS.items():
        seen: dict[str, str] = {}
        for scope in scopes:
            for action in by_scope[scope]:
                for key in _normal(effective[action]):
                    other = seen.get(key)
                    if other and (action in keymap or other in keymap):
                        raise TuiConfigProblem(
                            f"{path}: '{key}' would be bound to both {other} and {action} in {view}; "
                            "give one of them another key."
                        )
                    seen.setdefault(key, action)


def _normal(keys: str) -> list[str]:
    from textual.keys import _character_to_key

    return [_character_to_key(k) if len(k) == 1 else k for k in (key.strip() for key in keys.split(","))]
