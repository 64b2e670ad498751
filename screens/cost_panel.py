"""The Config section's time and cost table: per GPU type, fits?, time for the configured steps, cost.

The figures come from ``training.cost`` (computed in the form's estimate
worker); moving the cursor over a row (shift+tab from the first field reaches
the table, then the arrows) shows that card's memory, tokens/s, price and its
source on the lines below. The full path of settings.toml is in ``config check``'s
output and docs/cost.md.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from stylelora_tui.training.cost import MARKS, format_duration, format_money, settings_path

SHORT_MARKS = {**MARKS, "no bf16": "bf16?"}  # the column is 5 wide


class CostReady(Message):
    """The time and cost table for the form's current values (or the error that stopped it)."""

    def __init__(self, table: Any, generation: int) -> None:
        super().__init__()
        self.table = table  # a cost.CostTable, None (unknown shape) or an Exception
        self.generation = generation


class CostPanel(Vertical):
    """A compact DataTable (GPU, fit, time, cost) and a detail line for the highlighted card."""

    DEFAULT_CSS = """
    CostPanel { height: auto; }
    CostPanel > DataTable { height: auto; max-height: 9; scrollbar-size-vertical: 1; }
    CostPanel > #cost-detail { height: auto; max-height: 4; color: $text-muted; }
    """

    plain = ""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.table: Any = None

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="cost-table", cursor_type="row", zebra_stripes=False)
        table.tooltip = f"Time and cost of the configured steps per GPU type; prices: [gpu_prices] in {settings_path()}"
        yield table
        yield Static("", id="cost-detail", markup=False)

    def on_mount(self) -> None:
        grid = self.query_one(DataTable)
        for label, key in (("GPU", "gpu"), ("fit", "fit"), ("time", "time"), ("cost", "cost")):
            grid.add_column(label, key=key)

    def show(self, table: Any) -> None:
        grid = self.query_one(DataTable)
        grid.clear()
        self.table = table
        if table is None or isinstance(table, Exception):
            why = "unknown model shape" if table is None else f"{type(table).__name__}: {table}"
            self.plain = f"Time and cost: not estimated ({why})"
            self._detail(self.plain)
            return
        lines = ["Time and cost"]
        for row in table.rows:
            fit = SHORT_MARKS[row.verdict] + ("*" if row.checkpointing and row.runs else "")
            cells = (row.gpu.name, fit, format_duration(row.seconds) if row.runs else "-",
                     format_money(row.cost) if row.runs else "-")
            grid.add_row(*cells, key=row.gpu.name)
            lines.append(" ".join(cells))
        self.plain = "\n".join(lines)
        self._detail(self.summary())

    def summary(self) -> str:
        work = self.table.workload
        steps = f"{work.steps} steps" if work.steps else "steps unknown (no corpus)"
        cards = f"; {self.table.gpus} cards each (DDP)" if self.table.gpus > 1 else ""
        return f"{steps} x {work.tokens_per_step:,} tokens{cards}; *: grad. ckpt on; $/h: [gpu_prices] in {settings_path().name}"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.has_focus:
            self._detail(self.row_detail(event.cursor_row))

    def on_descendant_focus(self) -> None:
        self._detail(self.row_detail(self.query_one(DataTable).cursor_row))

    def on_descendant_blur(self) -> None:
        if self.table is not None and not isinstance(self.table, Exception):
            self._detail(self.summary())

    def row_detail(self, index: int) -> str:
        """One card's figures: what the narrow columns leave out."""
        if self.table is None or isinstance(self.table, Exception) or not 0 <= index < len(self.table.rows):
            return self.plain
        row = self.table.rows[index]
        price = f"${row.gpu.price_per_hour:.2f}/h: {row.gpu.price_source}" if row.gpu.price_per_hour else "no price"
        from stylelora_tui.training.estimate import format_bytes

        ckpt = " with grad. ckpt" if row.checkpointing else ""
        return (f"{row.gpu.name}: {format_bytes(row.memory_bytes)}{ckpt} of {row.gpu.memory_gib:g} GB ({row.verdict}), "
                f"~{row.tokens_per_s:,.0f} tokens/s, {price}")

    def _detail(self, text: str) -> None:
        self.query_one("#cost-detail", Static).update(text)
