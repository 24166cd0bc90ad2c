"""A small dialog of text fields whose submit calls the API and shows its refusals inline.

A 422 from the API names the fields it rejects (``details``); each message goes under its
field. Other refusals go under the field their code is about (:attr:`FormScreen.FIELD_OF_CODE`:
no such project, no such environment), else under the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Static

from control.client import ApiError, DevyardError
from control.wire.errors import ENVIRONMENT_NOT_FOUND, PROJECT_NOT_FOUND
from tui.screens.base import YardModal

Result = TypeVar("Result")
"""What a submitted form gives back (the created run, the started server)."""


@dataclass(frozen=True)
class FormField:
    """One text field."""

    name: str
    label: str
    placeholder: str = ""
    value: str = ""


class FieldProblem(Exception):
    """A value the form can reject before asking the API."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class FormScreen(YardModal[Result | None], Generic[Result]):
    """Fields, a submit button, inline errors; dismisses with what :meth:`submit` returned."""

    FIELD_OF_CODE: ClassVar[dict[str, str]] = {
        PROJECT_NOT_FOUND: "project",
        ENVIRONMENT_NOT_FOUND: "environment",
    }
    """The field an API error code is about (when the form has that field)."""

    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > Vertical {
        width: 80; max-width: 95%; height: auto; max-height: 100%; overflow-y: auto; padding: 1 2;
        border: thick $primary 60%; background: $surface;
    }
    FormScreen #title { text-style: bold; margin-bottom: 1; }
    FormScreen Label { color: $text-muted; }
    FormScreen Input { margin-bottom: 0; }
    FormScreen .problem { color: $error; height: auto; display: none; margin-bottom: 1; }
    FormScreen .problem.-shown { display: block; }
    FormScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    FormScreen Button { margin-left: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Cancel")]
    TITLE_TEXT = ""
    SUBMIT = "Submit"

    def __init__(self, fields: list[FormField]) -> None:
        super().__init__()
        self.fields = fields

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.TITLE_TEXT, id="title")
            for spec in self.fields:
                yield Label(spec.label)
                yield Input(value=spec.value, placeholder=spec.placeholder, id=f"field-{spec.name}")
                yield Static("", classes="problem", id=f"problem-{spec.name}", markup=False)
            yield Static("", classes="problem", id="problem-form", markup=False)
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel")
                yield Button(f"{self.SUBMIT} (enter)", id="submit", variant="primary")

    def on_mount(self) -> None:
        self.query_one(f"#field-{self.fields[0].name}", Input).focus()

    def values(self) -> dict[str, str]:
        return {spec.name: self.query_one(f"#field-{spec.name}", Input).value.strip() for spec in self.fields}

    def suggest(self, name: str, options: list[str]) -> None:
        """Offer completions for a field (accepted with the right arrow)."""
        self.query_one(f"#field-{name}", Input).suggester = SuggestFromList(options, case_sensitive=False)

    async def submit(self, values: dict[str, str]) -> Result:
        """Validate and call the API; raise FieldProblem or DevyardError to refuse."""
        raise NotImplementedError

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self._submit()
        else:
            self.action_close()

    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="submit")
    async def _submit(self) -> None:
        self._clear_problems()
        self.query_one("#submit", Button).disabled = True
        try:
            result = await self.submit(self.values())
        except FieldProblem as problem:
            self._show(problem.field, str(problem))
        except ApiError as exc:
            self._show_api_error(exc)
        except DevyardError as exc:
            self._show("form", str(exc))
        else:
            self.dismiss(result)
            return
        finally:
            if self.is_attached:
                self.query_one("#submit", Button).disabled = False

    def _clear_problems(self) -> None:
        for problem in self.query(".problem"):
            problem.remove_class("-shown")

    def _show(self, field: str, message: str) -> None:
        target = self.query(f"#problem-{field}")
        widget = target.first(Static) if target else self.query_one("#problem-form", Static)
        widget.update(message)
        widget.add_class("-shown")
        if field != "form" and target:
            self.query_one(f"#field-{field}", Input).focus()

    def _show_api_error(self, exc: ApiError) -> None:
        names = {spec.name for spec in self.fields}
        shown = False
        for detail in exc.extra.get("details") or []:
            field = str(detail.get("field", "")).split(".")[0] if isinstance(detail, dict) else ""
            if field in names:
                self._show(field, f"{detail.get('message', exc.message)}.")
                shown = True
        if shown:
            return
        field = self.FIELD_OF_CODE.get(exc.code, "form")
        self._show(field if field in names else "form", exc.message)
