"""Modal dialogs, each a typed ``ModalScreen[T]`` closed with ``dismiss(value)``."""

from __future__ import annotations

from typing import Sequence, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option


T = TypeVar("T")


class Dialog(ModalScreen[T]):
    """The frame every dialog shares (centred, bordered); subclasses say what ``dismiss`` returns."""

    DEFAULT_CSS = """
    Dialog, ConfirmDialog, MessageDialog, ChoiceDialog, FieldsDialog {
        align: center middle;
    }
    .dialog {
        width: 70;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    .dialog .title { text-style: bold; color: $primary; margin-bottom: 1; }
    .dialog .buttons { height: auto; align-horizontal: right; margin-top: 1; }
    .dialog .buttons Button { margin-left: 1; }
    .dialog VerticalScroll { height: auto; max-height: 16; }
    .dialog Input { margin-bottom: 0; }
    """


class FormDialog(Dialog[T]):
    """A dialog that gathers values: its "ok" button and enter in a field run ``action_ok`` (which checks and
    dismisses with the result); any other button and escape dismiss with None."""

    def action_ok(self) -> None:
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_ok()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_ok()
        else:
            self.dismiss(None)


class ConfirmDialog(Dialog[bool]):
    """Yes or no: ``dismiss(True)`` to go ahead."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, text: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self._title, self._text, self._yes, self._no = title, text, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="title")
            yield Static(self._text, markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self._yes} (y)", id="yes", variant="warning")
                yield Button(f"{self._no} (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class MessageDialog(Dialog[None]):
    """A message (an error, a diff) to read and close."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, text: str, *, error: bool = False) -> None:
        super().__init__()
        self._title, self._text, self._error = title, text, error

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog" + (" error" if self._error else "")):
            yield Label(self._title, classes="title")
            with VerticalScroll():
                yield Static(self._text, markup=False, classes="message")
            with Horizontal(classes="buttons"):
                yield Button("Close (esc)", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class ChoiceDialog(Dialog["str | None"]):
    """Pick one of several options: ``dismiss(option id)`` or ``None``."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: Sequence[tuple[str, str]], empty: str = "Nothing to choose from.") -> None:
        super().__init__()
        self._title, self._choices, self._empty = title, list(choices), empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="title")
            if self._choices:
                yield OptionList(*[Option(label, id=key) for key, label in self._choices])
            else:
                yield Static(self._empty)
            with Horizontal(classes="buttons"):
                yield Button("Cancel (esc)", id="cancel")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class FieldsDialog(Dialog["dict[str, str] | None"]):
    """A few labelled text fields: ``dismiss({name: text})`` or ``None``."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: Sequence[tuple[str, str, str]], ok: str = "OK", note: str = "") -> None:
        super().__init__()
        self._title, self._fields, self._ok, self._note = title, list(fields), ok, note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="title")
            if self._note:
                yield Static(self._note, markup=False)
            for name, label, value in self._fields:
                yield Label(label)
                yield Input(value, id=f"field-{name}", compact=True)
            with Horizontal(classes="buttons"):
                yield Button(f"{self._ok} (enter)", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def _values(self) -> dict[str, str]:
        return {name: self.query_one(f"#field-{name}", Input).value for name, _, _ in self._fields}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(self._values())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._values() if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
