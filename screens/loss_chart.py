"""A loss chart (textual-plotext) shared by the Train and Runs sections.

Series colours come from theme variables (``$primary``, ``$secondary``, ...)
read at draw time, so every theme works; the axes follow the theme through
textual-plotext's "auto" theme. Points are thinned to about two per braille
column before plotting, so a redraw costs the same for 50 or 50,000 steps;
the owner calls ``show`` at most a few times a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.color import Color
from textual_plotext import PlotextPlot

PALETTE = ("primary", "secondary", "accent", "success", "warning", "error")
ZOOMS = (None, 1000, 200, 50)  # None: the whole run


@dataclass
class Series:
    label: str
    steps: list[int]
    values: list[float]
    colour: str = "primary"  # a theme variable name
    marker: str = "braille"


def ema(values: list[float], weight: float = 0.8) -> list[float]:
    """TensorBoard-style exponential smoothing (debiased)."""
    out, last, norm = [], 0.0, 0.0
    for value in values:
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(last / norm if norm else value)
    return out


def thin(steps: list[int], values: list[float], points: int) -> tuple[list[int], list[float]]:
    """At most about ``points`` points, the first and the last always kept."""
    if len(steps) <= points or points < 2:
        return steps, values
    stride = math.ceil(len(steps) / points)
    xs, ys = steps[::stride], values[::stride]
    if xs[-1] != steps[-1]:
        xs.append(steps[-1])
        ys.append(values[-1])
    return xs, ys


def zoom_label(zoom: int | None) -> str:
    return "whole run" if zoom is None else f"last {zoom} steps"


class LossChart(PlotextPlot):
    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series: list[Series] = []
        self.smooth = False
        self.log_scale = False
        self.zoom: int | None = None
        self.empty_text = "No loss yet."
        self.plotted_points = 0

    def show(self, series: list[Series], *, smooth: bool = False, log_scale: bool = False, zoom: int | None = None) -> None:
        self.series, self.smooth, self.log_scale, self.zoom = series, smooth, log_scale, zoom
        self.refresh()

    def _rgb(self, variable: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable) or self.app.theme_variables.get("foreground", "#888888")
        return Color.parse(value).rgb

    def render(self):
        if not any(s.steps for s in self.series):
            return Text(self.empty_text, style="italic")
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        last_step = max(s.steps[-1] for s in self.series if s.steps)
        low = last_step - self.zoom if self.zoom else None
        width = max(10, self.size.width)
        self.plotted_points = 0
        for series in self.series:
            steps, values = series.steps, series.values
            if self.smooth and len(values) > 2 and series.marker == "braille":
                values = ema(values)
            if low is not None:
                start = next((i for i, s in enumerate(steps) if s > low), len(steps))
                steps, values = steps[start:], values[start:]
            if self.log_scale:
                pairs = [(s, v) for s, v in zip(steps, values) if v > 0]
                steps, values = [p[0] for p in pairs], [p[1] for p in pairs]
            steps, values = thin(list(steps), list(values), width * 2)
            if not steps:
                continue
            self.plotted_points += len(steps)
            draw = plt.plot if series.marker == "braille" else plt.scatter
            draw(steps, values, marker=series.marker, color=self._rgb(series.colour), label=series.label)
        if self.log_scale:
            plt.yscale("log")
        plt.xlabel("step")
        return super().render()
