"""The command palette (``ctrl+p``): every action of the current view, with its key."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.dom import DOMNode

from tui.actions import ACTIONS, SCOPES, ActionSpec

if TYPE_CHECKING:
    from tui.app import DevyardApp


def key_display(app: DevyardApp, spec: ActionSpec) -> str:
    """The keys of ``spec`` as the footer shows them, after the user's keymap."""
    keys = app.config.keymap.get(spec.id, spec.keys)
    return " ".join(app.get_key_display(Binding(key.strip(), "")) for key in keys.split(","))


class ActionCommands(Provider):
    """Actions of the scopes live on the screen under the palette."""

    def _entries(self) -> list[tuple[ActionSpec, DOMNode, str]]:
        app = cast("DevyardApp", self.app)
        scopes = dict(app.action_scopes(self.screen))
        entries: list[tuple[ActionSpec, DOMNode, str]] = []
        for spec in ACTIONS:
            node = scopes.get(spec.scope)
            if node is not None and not (app.read_only and spec.writes):
                entries.append((spec, node, key_display(app, spec)))
        return entries

    def _display(self, spec: ActionSpec, keys: str, title: Content | None = None) -> Content:
        return Content.assemble(title or spec.title, (f"  {keys}", "bold"), (f"  {SCOPES[spec.scope]}", "dim"))

    def _run(self, spec: ActionSpec, node: DOMNode) -> None:
        self.app.call_later(self.app.run_action, spec.action, node)

    async def discover(self) -> Hits:
        for spec, node, keys in self._entries():
            yield DiscoveryHit(
                self._display(spec, keys), partial(self._run, spec, node), text=spec.title, help=spec.help
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for spec, node, keys in self._entries():
            haystack = f"{spec.title} · {spec.help}"
            score = matcher.match(haystack)
            if score > 0:
                display = self._display(spec, keys, matcher.highlight(spec.title))
                yield Hit(score, display, partial(self._run, spec, node), text=spec.title, help=spec.help)
