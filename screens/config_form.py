"""The Config section: a form generated from ``config.SCHEMA``, with the live estimate.

Every value goes through the core validator on each change; its messages sit
under their fields. The form compares itself with the last loaded or saved
config to know whether it has unsaved changes (the app asks before quitting).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Label, Select, SelectionList, Static, Switch

from stylelora_tui import config as cfg
from stylelora_tui.config.schema import applies
from stylelora_tui.paths import BadName, check_name
from stylelora_tui.screens.commands import CommandBindings, bindings
from stylelora_tui.screens.commands import config as commands
from stylelora_tui.screens.cost_panel import CostPanel, CostReady
from stylelora_tui.screens.dialogs import ChoiceDialog, ConfirmDialog, FieldsDialog, MessageDialog
from stylelora_tui.screens.messages import EstimateReady
from stylelora_tui.screens.section import SectionScreen
from stylelora_tui.screens.widgets import EstimatePanel, KeyBar, TitleBar, compute_estimate

AUTO_CHOICES = [("auto", "auto"), ("true", True), ("false", False)]


def _wid(dotted: str) -> str:
    return "f-" + dotted.replace(".", "-")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _parse(kind: str, text: str) -> Any:
    """Form text to a Python value; anything unparsable goes to the validator as text."""
    stripped = text.strip()
    if kind == "int":
        try:
            return int(stripped)
        except ValueError:
            return stripped
    if kind == "float":
        try:
            return float(stripped)
        except ValueError:
            return stripped
    return text


class FieldSelect(Select, inherit_bindings=False):
    """A Select whose menu opens on enter or space only: up and down stay free to move between fields."""

    BINDINGS = [Binding("enter,space", "show_overlay", "Show menu", show=False)]


class FieldList(CommandBindings, VerticalScroll, can_focus=False):
    """The form's scrolling column: up and down move between fields (the column scrolls to them)."""

    BINDINGS = bindings("config", commands.NextField, commands.PreviousField)  # posted here, handled by the screen


class ConfigScreen(SectionScreen):

    CSS_PATH = Path(__file__).parent / "config_form.tcss"
    SCOPE = "config"
    BINDINGS = bindings("config")
    # Nothing focused at first, so single keys switch sections; tab or down goes to the first field.
    # (Focusing the form itself would restyle all its ~180 widgets: a quarter of the first visit.)
    AUTO_FOCUS = ""

    def __init__(self) -> None:
        super().__init__()
        self.baseline: dict[str, dict[str, Any]] = cfg.defaults()
        self.current_file: Path | None = None
        self.problems: list[cfg.Problem] = []
        self._generation = 0
        self._timer = None

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with Horizontal(id="config-body"):
            with Vertical(id="form-column"):
                yield Static("", id="form-status", classes="muted")
                with FieldList(id="form"):
                    for section, keys in cfg.SCHEMA.items():
                        yield Label(cfg.SECTION_TITLES[section], classes="section-title")
                        for key, spec in keys.items():
                            yield from self._field(section, key, spec)
                yield Static("tab or down: the first field; esc leaves a field (then 1-5 switch sections)", id="field-help", classes="muted")
            with Vertical(id="estimate-column"):
                yield EstimatePanel(id="estimate")
                yield CostPanel(id="cost")
        yield KeyBar()

    def _field(self, section: str, key: str, spec: cfg.Field) -> ComposeResult:
        dotted = f"{section}.{key}"
        wid = _wid(dotted)
        widget: Widget
        if spec.kind == "bool":
            widget = Switch(bool(spec.default), id=wid)
        elif spec.kind == "choice":
            widget = FieldSelect([(c, c) for c in spec.choices], value=spec.default, allow_blank=False, id=wid, compact=True)
        elif spec.kind == "bool_or_auto":
            widget = FieldSelect(AUTO_CHOICES, value=spec.default, allow_blank=False, id=wid, compact=True)
        elif spec.kind == "list":
            widget = SelectionList(*[(item, item, item in spec.default) for item in spec.allowed_items], id=wid)
        else:
            widget = Input(_text(spec.default), id=wid, compact=True)
        widget.tooltip = spec.help
        with Horizontal(id="r-" + wid[2:], classes="field-row" + (" tall" if spec.kind == "list" else "")):
            yield Label(key, classes="field-label")
            yield widget
            if spec.kind == "bool":
                yield Label("on" if spec.default else "off", id="s-" + wid[2:], classes="switch-state")
        # A field's problem line ("p-...") is made the first time it has a problem: see _show_problems.

    def on_mount(self) -> None:
        self.sub_title = "Config"
        self.app.config_screen = self  # the Train section launches from this form
        newest = self.app.workspace.newest_config()
        if newest is not None:
            self.load_file(newest, quiet=True)
        else:
            self.refresh_checks()
        self.take_fork()

    def on_screen_resume(self) -> None:
        self.take_fork()

    def take_fork(self) -> None:
        """Load a run's config handed over by the Train section's fork (``app.pending_fork``)."""
        pending = getattr(self.app, "pending_fork", None)
        if not pending:
            return
        self.app.pending_fork = None
        config, name = pending

        def apply() -> None:
            self.current_file = self.app.workspace.configs_dir / name
            self.baseline = cfg.defaults()
            self.fill(config)
            self.notify(f"Forked into the form as {name} (not saved): edit, save with ctrl+s, launch from Train (3, n)")

        self._confirm_discard(apply)

    # ----------------------------------------------------------------- reading and filling

    def raw_values(self) -> dict[str, dict[str, Any]]:
        raw: dict[str, dict[str, Any]] = {}
        for section, keys in cfg.SCHEMA.items():
            raw[section] = {}
            for key, spec in keys.items():
                widget = self.query_one("#" + _wid(f"{section}.{key}"))
                if isinstance(widget, Switch):
                    value: Any = widget.value
                elif isinstance(widget, Select):
                    value = widget.value
                elif isinstance(widget, SelectionList):
                    chosen = set(widget.selected)
                    value = [item for item in spec.allowed_items if item in chosen]
                else:
                    value = _parse(spec.kind, widget.value)  # type: ignore[attr-defined]
                raw[section][key] = value
        return raw

    def fill(self, values: dict[str, Any]) -> None:
        """Put values (possibly invalid ones, from a hand-edited file) into the form."""
        for section, keys in cfg.SCHEMA.items():
            given = values.get(section) if isinstance(values.get(section), dict) else {}
            for key, spec in keys.items():
                value = given.get(key, spec.default)
                widget = self.query_one("#" + _wid(f"{section}.{key}"))
                if isinstance(widget, Switch):
                    widget.value = bool(value) if isinstance(value, bool) else bool(spec.default)
                elif isinstance(widget, Select):
                    options = spec.choices if spec.kind == "choice" else ("auto", True, False)
                    widget.value = value if value in options else spec.default
                elif isinstance(widget, SelectionList):
                    items = value if isinstance(value, list) else _text(value).split(",")
                    wanted = {str(v).strip() for v in items}
                    widget.deselect_all()
                    for item in spec.allowed_items:
                        if item in wanted:
                            widget.select(item)
                else:
                    widget.value = _text(value)  # type: ignore[attr-defined]
        self.refresh_checks()

    # ----------------------------------------------------------------- checking

    @on(Input.Changed)
    @on(Switch.Changed)
    @on(Select.Changed)
    @on(SelectionList.SelectedChanged)
    def _changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.12, self.refresh_checks)

    def refresh_checks(self) -> None:
        raw = self.raw_values()
        config, problems = cfg.validate(raw, workspace=self.app.workspace.root, check_paths=True)
        self.problems = problems
        by_key: dict[str, list[str]] = {}
        for problem in problems:
            by_key.setdefault(problem.key, []).append(problem.message)
        self._show_problems(by_key)
        method = raw["lora"]["method"]
        for section, keys in cfg.SCHEMA.items():  # a method's own fields only under it (or while they have a problem)
            for key in keys:
                row = self.query_one("#r-" + _wid(f"{section}.{key}")[2:])
                row.display = applies(section, key, method) or f"{section}.{key}" in by_key
        for switch in self.query(Switch):
            self.query_one("#s-" + (switch.id or "")[2:], Label).update("on" if switch.value else "off")
        dirty = raw != self._comparable(self.baseline)
        self.app.config_dirty = dirty
        name = self.current_file.name if self.current_file else "(not saved)"
        status = f"{name}{' *modified*' if dirty else ''} | "
        status += f"{len(problems)} problem(s)" if problems else "valid"
        self.query_one("#form-status", Static).update(status)
        self.sub_title = f"Config: {name}{' *' if dirty else ''}"
        self._generation += 1
        self.run_estimate(config, self._generation)

    def _show_problems(self, by_key: dict[str, list[str]]) -> None:
        """Each field's messages on the line under it (made on first use: most fields never have one)."""
        form = self.query_one("#form")
        for section, keys in cfg.SCHEMA.items():
            for key in keys:
                dotted = f"{section}.{key}"
                name = _wid(dotted)[2:]
                messages = by_key.get(dotted, [])
                found = form.query_children("#p-" + name)
                if not messages and not found:
                    continue
                line = found.first(Static) if found else Static("", id="p-" + name, classes="problem", markup=False)
                if not found:
                    form.mount(line, after=form.query_one("#r-" + name))
                line.update("\n".join(f"! {m}" for m in messages))
                line.set_class(bool(messages), "-shown")

    def _comparable(self, config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # What the form would read back for this config (ints as ints, floats as floats).
        out: dict[str, dict[str, Any]] = {}
        for section, keys in cfg.SCHEMA.items():
            out[section] = {}
            for key, spec in keys.items():
                value = config.get(section, {}).get(key, spec.default)
                if spec.kind in ("int", "float", "str"):
                    value = _parse(spec.kind, _text(value))
                if spec.kind == "list":
                    value = [item for item in spec.allowed_items if item in (value or [])]
                out[section][key] = value
        return out

    @work(thread=True, exclusive=True, group="estimate", exit_on_error=False)
    def run_estimate(self, config: dict[str, dict[str, Any]], generation: int) -> None:
        root = self.app.workspace.root
        estimate, verdicts = compute_estimate(config, [root, root / "models"])
        self.post_message(EstimateReady(estimate, verdicts, generation))
        from stylelora_tui.training.cost import cost_table

        try:
            table = cost_table(config, root, search_dirs=(root, root / "models"), prices=self.app.settings.gpu_prices)
        except Exception as exc:  # noqa: BLE001 - like the estimate, it must never take the form down
            table = exc
        self.post_message(CostReady(table, generation))

    def on_estimate_ready(self, message: EstimateReady) -> None:
        if message.generation == self._generation:
            self.query_one(EstimatePanel).show(message.estimate, message.flipped)

    def on_cost_ready(self, message: CostReady) -> None:
        if message.generation == self._generation:
            self.query_one(CostPanel).show(message.table)

    def on_descendant_focus(self, event) -> None:
        tip = getattr(event.widget, "tooltip", None)
        wid = event.widget.id or ""
        if wid.startswith("f-") and tip:
            self.query_one("#field-help", Static).update(f"{wid[2:].replace('-', '.', 1)}: {tip}")

    # ----------------------------------------------------------------- commands (commands/config.py)

    def on_leave_field(self, _command: commands.LeaveField) -> None:
        self.set_focus(None)

    def on_next_field(self, _command: commands.NextField) -> None:
        self.focus_next()

    def on_previous_field(self, _command: commands.PreviousField) -> None:
        self.focus_previous()

    def _confirm_discard(self, then) -> None:
        if not self.app.config_dirty:
            then()
            return
        self.app.push_screen(
            ConfirmDialog("Discard changes?", "The form has unsaved changes. Replace them?", yes="Discard", no="Keep"),
            lambda yes: then() if yes else None,
        )

    def on_load_preset(self, _command: commands.LoadPreset) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.fill(cfg.preset(name))
                self.notify(f"Preset {name!r} loaded (not saved yet)")

        def ask() -> None:
            choices = [(name, f"{name}: {text}") for name, (text, _) in cfg.PRESETS.items()]
            self.app.push_screen(ChoiceDialog("Preset", choices), chosen)

        self._confirm_discard(ask)

    def on_open_config(self, _command: commands.OpenConfig) -> None:
        folder = self.app.workspace.configs_dir
        files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))

        def chosen(name: str | None) -> None:
            if name:
                self.load_file(folder / name)

        def ask() -> None:
            self.app.push_screen(
                ChoiceDialog(f"Open a config from {folder}", [(f.name, f.name) for f in files], empty=f"No .yaml files in {folder} yet."),
                chosen,
            )

        self._confirm_discard(ask)

    def load_file(self, path: Path, *, quiet: bool = False) -> None:
        try:
            text = path.read_text(encoding="utf-8-sig")
            raw, lines = cfg.parse_yaml(text, source=str(path))
        except OSError as exc:
            self.app.push_screen(MessageDialog("Cannot read the config", f"{path}: {exc}", error=True))
            return
        except cfg.ConfigError as exc:
            self.app.push_screen(MessageDialog("Not a valid YAML file", str(exc), error=True))
            return
        raw = raw if isinstance(raw, dict) else {}
        config, problems = cfg.validate(raw, check_paths=False, lines=lines, source=path.name)
        self.current_file = path
        self.baseline = config
        self.fill(raw)
        homeless = [p for p in problems if p.key.count(".") != 1 or p.key.split(".")[0] not in cfg.SCHEMA or p.key.split(".")[1] not in cfg.SCHEMA[p.key.split(".")[0]]]
        if homeless:
            self.app.push_screen(MessageDialog(f"{path.name}: keys the form cannot show", "\n".join(str(p) for p in homeless), error=True))
        elif problems and not quiet:
            self.notify(f"{path.name}: {len(problems)} problem(s), shown under their fields", severity="warning")
        elif not quiet:
            self.notify(f"Loaded {path.name}")

    def on_save_config(self, _command: commands.SaveConfig) -> None:
        raw = self.raw_values()
        config, problems = cfg.validate(raw, workspace=self.app.workspace.root, check_paths=False)
        if problems:
            self.notify(f"Fix {len(problems)} problem(s) first: {problems[0]}", severity="error", timeout=6)
            return
        default = self.current_file.name if self.current_file else "config.yaml"

        def chosen(values: dict[str, str] | None) -> None:
            if not values or not values.get("name", "").strip():
                return
            name = values["name"].strip()
            try:
                check_name(name, "config name")
            except BadName as exc:
                self.notify(f"Not saved: {exc}", severity="error", timeout=6)
                return
            if not name.endswith((".yaml", ".yml")):
                name += ".yaml"
            path = self.app.workspace.configs_dir / name
            try:
                cfg.save(path, config)
            except OSError as exc:
                self.app.push_screen(MessageDialog("Could not save", f"{path}: {exc}", error=True))
                return
            self.current_file = path
            self.baseline = config
            self.refresh_checks()
            self.notify(f"Saved {path}")

        self.app.push_screen(
            FieldsDialog("Save config", [("name", f"File name in {self.app.workspace.configs_dir}", default)], ok="Save"),
            chosen,
        )

    def on_diff_config(self, _command: commands.DiffConfig) -> None:
        config, _ = cfg.validate(self.raw_values(), check_paths=False)
        changes = cfg.diff(config)
        text = "\n".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changes) or "Same as the lab's defaults."
        self.app.push_screen(MessageDialog("Differences from the lab's defaults", text))

    def on_start_sweep(self, _command: commands.StartSweep) -> None:
        from stylelora_tui.screens.sweep_dialog import open_sweep_dialog  # the dialog lives in its own module

        open_sweep_dialog(self)
