"""The mix dialog of the Adapters section: method, weights, density, name, checked before it closes.

The core's checks (``adapters.check_mix``: the recipe, the name, and whether
the adapters can be combined) read the runs' small files, so they run in a
worker thread; a refusal (different base models, ranks for a same-rank
method, rsLoRA/DoRA, data formats, target modules) is shown in the dialog,
naming both adapters and the mismatch. They run again whenever the method
changes, so a refusal shows before the user presses Mix.
"""

from __future__ import annotations

from dataclasses import dataclass

from stylelora_tui.screens.dialogs import FormDialog
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from stylelora_tui.adapters import (
    DEFAULT_DENSITY,
    METHODS,
    USES_DENSITY,
    MixError,
    check_mix,
    default_mix_name,
    default_weights,
)
from stylelora_tui.runs.workspace import Workspace


@dataclass(frozen=True)
class MixRequest:
    names: list[str]
    method: str
    weights: list[float]
    density: float | None
    name: str


class MixChecked(Message):
    """The core's verdict on a recipe: ``problem`` is empty when it can be mixed."""

    def __init__(self, request: MixRequest | None, problem: str, notes: list[str], launch: bool) -> None:
        super().__init__()
        self.request, self.problem, self.notes, self.launch = request, problem, notes, launch


def parse_request(names: list[str], method: str, weights: str, density: str, name: str) -> MixRequest:
    """The fields as a request; MixError saying which field is wrong."""
    try:
        weight_values = [float(part) for part in weights.split(",") if part.strip()]
    except ValueError:
        raise MixError(f"weights {weights!r}: give numbers separated by commas, one per adapter (e.g. 0.6,0.4)") from None
    density_value = None
    if method in USES_DENSITY:
        try:
            density_value = float(density)
        except ValueError:
            raise MixError(f"density {density!r}: give a number in (0, 1], the share of each adapter's weights kept") from None
    return MixRequest(list(names), method, weight_values, density_value, name.strip())


class MixDialog(FormDialog["MixRequest | None"]):
    """``dismiss(MixRequest)`` once the core has accepted the recipe, or ``None``."""

    DEFAULT_CSS = """
    MixDialog .row { height: 1; }
    MixDialog .row Label { width: 10; }
    MixDialog .row Input, MixDialog .row Select { width: 1fr; }
    MixDialog #mix-sources { margin-bottom: 1; }
    MixDialog #mix-problem { color: $error; height: auto; margin-top: 1; }
    MixDialog #mix-problem.ok { color: $text-muted; }
    MixDialog .buttons Button { min-width: 12; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "ok", "Mix", priority=True)]

    def __init__(self, workspace: Workspace, names: list[str], shapes: list[str], taken: set[str]) -> None:
        """``shapes``: each adapter's PEFT type and rank, to show; ``taken``: run names a new name must avoid."""
        super().__init__()
        self.workspace, self.names, self._shapes, self._taken = workspace, list(names), shapes, taken
        self._name = default_mix_name(self.names, METHODS[0], taken)  # follows the method until the user edits it
        self.problem = ""
        self.checking = False
        self.latest: MixRequest | None = None  # the request last sent to the checks: older verdicts are dropped

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Mix {len(self.names)} adapters (PEFT add_weighted_adapter)", classes="title")
            yield Static(", ".join(f"{name} ({shape})" for name, shape in zip(self.names, self._shapes)),
                         markup=False, id="mix-sources")
            with Horizontal(classes="row"):
                yield Label("method")
                yield Select([(method, method) for method in METHODS], value=METHODS[0], allow_blank=False,
                             compact=True, id="mix-method")
            with Horizontal(classes="row"):
                yield Label("weights")
                yield Input(",".join(f"{w:g}" for w in default_weights(len(self.names))), id="mix-weights", compact=True)
            with Horizontal(classes="row", id="mix-density-row"):
                yield Label("density")
                yield Input(f"{DEFAULT_DENSITY:g}", id="mix-density", compact=True)
            with Horizontal(classes="row"):
                yield Label("name")
                yield Input(self._name, id="mix-name", compact=True)
            yield Static("", markup=False, id="mix-problem")
            with Horizontal(classes="buttons"):
                yield Button("Mix (ctrl+s)", id="ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#mix-method", Select).focus()
        self._method_changed()

    # ----------------------------------------------------------------- fields

    def method(self) -> str:
        return str(self.query_one("#mix-method", Select).value)

    def _method_changed(self) -> None:
        self.query_one("#mix-density-row").display = self.method() in USES_DENSITY
        name = self.query_one("#mix-name", Input)
        if name.value == self._name:
            self._name = name.value = default_mix_name(self.names, self.method(), self._taken)
        self.check(launch=False)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._method_changed()

    def show_problem(self, text: str, ok: bool = False) -> None:
        self.problem = "" if ok else text
        problem = self.query_one("#mix-problem", Static)
        problem.set_class(ok, "ok")
        problem.update(text)

    # ----------------------------------------------------------------- the core's checks

    def check(self, launch: bool) -> None:
        try:
            request = parse_request(self.names, self.method(), self.query_one("#mix-weights", Input).value,
                                    self.query_one("#mix-density", Input).value, self.query_one("#mix-name", Input).value)
        except MixError as exc:
            self.show_problem(str(exc))
            return
        self.checking, self.latest = True, request
        self.show_problem("checking...", ok=True)
        self.run_check(request, launch)

    @work(thread=True, exclusive=True, group="mix-check", exit_on_error=False)
    def run_check(self, request: MixRequest, launch: bool) -> None:
        try:
            notes = check_mix(self.workspace, request.names, method=request.method, weights=request.weights,
                              density=request.density, name=request.name)
        except MixError as exc:
            self.post_message(MixChecked(request, str(exc), [], launch))
            return
        except Exception as exc:  # noqa: BLE001 - any other failure is a refusal with its reason, not a traceback
            self.post_message(MixChecked(request, f"{type(exc).__name__}: {exc}", [], launch))
            return
        self.post_message(MixChecked(request, "", notes, launch))

    def on_mix_checked(self, message: MixChecked) -> None:
        if message.request is not self.latest:
            return
        self.checking = False
        if message.problem:
            self.show_problem(message.problem)
            return
        self.show_problem("; ".join(f"note: {note}" for note in message.notes) or "these adapters can be mixed", ok=True)
        if message.launch:
            self.dismiss(message.request)

    # ----------------------------------------------------------------- closing

    def action_ok(self) -> None:
        self.check(launch=True)
