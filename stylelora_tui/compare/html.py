"""compare.html: one self-contained page (inline CSS and SVG, no script, no external asset).

Per prompt, the samples of each variant side by side (base on the left, then
each run), stacked on phone widths; the author's own continuation as a
reference; the style scores and held-out losses; the run's config and its
loss curve. Every piece of model, corpus and config text goes through
``html.escape``: model output is untrusted text.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from stylelora_tui.compare.forgetting import forgetting_line
from stylelora_tui.runs.events import eval_history, training_history

CSS = """
:root { --fg: #1d232a; --muted: #5b6570; --bg: #fbfaf7; --card: #ffffff; --line: #dcd8cf; --accent: #2f6f8f; --base: #8a6d3b; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e2da; --muted: #a49e93; --bg: #171a1d; --card: #20252a; --line: #363c43; --accent: #7fb8d6; --base: #d3b27a; }
}
* { box-sizing: border-box; }
body { margin: 0; padding: 1.5rem; font: 16px/1.55 Georgia, "Iowan Old Style", serif; color: var(--fg); background: var(--bg); }
main { max-width: 1200px; margin: 0 auto; }
h1, h2, h3, .label, table, .meta { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
.meta, .label { color: var(--muted); font-size: .85rem; }
.warn { color: #b3261e; font-weight: bold; }
.reading { font-size: 1.1rem; padding: .75rem 1rem; background: var(--card); border-left: 4px solid var(--accent); }
table { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
th, td { border: 1px solid var(--line); padding: .3rem .6rem; text-align: left; vertical-align: top; }
.prompt { background: var(--card); border: 1px solid var(--line); padding: .75rem 1rem; margin: .5rem 0; }
.grid { display: grid; gap: .75rem; grid-template-columns: repeat(var(--cols), minmax(0, 1fr)); }
.head { font-family: system-ui, sans-serif; font-weight: 600; }
.cell { background: var(--card); border: 1px solid var(--line); border-top: 3px solid var(--accent); padding: .6rem .8rem; }
.cell.base { border-top-color: var(--base); }
.text { white-space: pre-wrap; overflow-wrap: anywhere; margin: .25rem 0 0; }
.cell .label { display: none; }
details { margin: .5rem 0; }
.scroll { overflow-x: auto; max-width: 100%; }
pre.config { white-space: pre-wrap; font-size: .85rem; background: var(--card); border: 1px solid var(--line); padding: .75rem; }
svg { max-width: 100%; height: auto; background: var(--card); border: 1px solid var(--line); }
@media (max-width: 720px) {
  body { padding: .75rem; }
  .grid { grid-template-columns: 1fr; }
  .grid .head { display: none; }
  .cell .label { display: block; }
}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _percent(value: Any) -> str:
    return "" if value is None else f"{value:.0%}"


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def loss_svg(events: Iterable[Mapping[str, Any]], width: int = 640, height: int = 220) -> str:
    """Training loss (line) and held-out loss (dots) against the step, as inline SVG."""
    events = list(events)
    train = [(e["step"], e["loss"]) for e in training_history(events) if e.get("loss") is not None]
    evals = [(e["step"], e["eval_loss"]) for e in eval_history(events) if e.get("eval_loss") is not None]
    points = train + evals
    if not points:
        return '<p class="meta">No loss was logged for this run.</p>'
    pad_l, pad_r, pad_t, pad_b = 48, 12, 12, 30
    max_step = max(step for step, _ in points) or 1
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1.0

    def xy(step: float, value: float) -> tuple[float, float]:
        x = pad_l + (width - pad_l - pad_r) * step / max_step
        y = pad_t + (height - pad_t - pad_b) * (high - value) / span
        return round(x, 1), round(y, 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="loss curve">']
    for value in (low, (low + high) / 2, high):
        _, y = xy(0, value)
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y}" y2="{y}" stroke="currentColor" stroke-opacity=".15"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4}" font-size="11" text-anchor="end" fill="currentColor">{esc(f"{value:.2f}")}</text>')
    parts.append(f'<text x="{width - pad_r}" y="{height - 8}" font-size="11" text-anchor="end" fill="currentColor">step {esc(max_step)}</text>')
    if train:
        path = " ".join(f"{x},{y}" for x, y in (xy(s, v) for s, v in train))
        parts.append(f'<polyline fill="none" stroke="#2f6f8f" stroke-width="2" points="{path}"><title>training loss</title></polyline>')
    for step, value in evals:
        x, y = xy(step, value)
        parts.append(f'<circle cx="{x}" cy="{y}" r="4" fill="#c0582b"><title>eval loss {esc(f"{value:.3f}")} at step {esc(step)}</title></circle>')
    parts.append(f'<text x="{pad_l + 6}" y="{height - 8}" font-size="11" fill="currentColor">— training loss   ● held-out loss</text>')
    parts.append("</svg>")
    return "".join(parts)


def _style_table(style: Mapping[str, Any] | None, losses: Mapping[str, Any] | None, variants: list[str],
                 general: Mapping[str, Any] | None = None) -> str:
    if not style and not losses:
        return ""
    style = style or {}
    author = style.get("author", {})
    # The wrapper scrolls a wide table on a phone instead of widening the page.
    rows = ['<div class="scroll"><table><tr><th></th><th>Burrows\'s Delta to author</th><th>words / sentence</th><th>vocabulary (MATTR)</th>'
            '<th>samples that loop</th><th>held-out loss</th><th>perplexity</th><th>general English loss</th></tr>']
    rows.append(f'<tr><th>author</th><td>0</td><td>{_num(author.get("mean_sentence_length"), 1)}</td>'
                f'<td>{_num(author.get("mattr"))}</td><td></td><td></td><td></td><td></td></tr>')
    for name in variants:
        scores = style.get("variants", {}).get(name, {})
        loss = (losses or {}).get(name, {})
        rows.append(
            f'<tr><th>{esc(name)}</th><td>{_num(scores.get("delta"))}</td><td>{_num(scores.get("mean_sentence_length"), 1)}</td>'
            f'<td>{_num(scores.get("mattr"))}</td><td>{_percent(scores.get("loop_share"))}</td><td>{_num(loss.get("eval_loss"))}</td><td>{_num(loss.get("perplexity"), 2)}</td>'
            f'<td>{_num(((general or {}).get(name) or {}).get("eval_loss"))}</td></tr>'
        )
    rows.append("</table></div>")
    if style.get("method"):
        rows.append(f'<p class="meta">{esc(style["method"])}. A sample loops when some five-word phrase comes back three times or more. '
                    'Held-out loss: on eval.jsonl, over the tokens training learns from.</p>')
    return "".join(rows)


def _authors_table(entries: Any, variants: list[str]) -> str:
    """Each side's Delta to each author the runs learned (rows: sides; columns: authors; the closest in bold)."""
    entries = [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []
    if not entries:
        return ""
    head = "".join(f'<th>{esc(e.get("author"))}<div class="meta">{esc(", ".join(e.get("runs") or []))}</div></th>' for e in entries)
    rows = [f'<h2>Distance to each author</h2><div class="scroll"><table><tr><th></th>{head}</tr>']
    for name in variants:
        cells = []
        for entry in entries:
            value = _num((entry.get("delta") or {}).get(name)) if not entry.get("error") else "-"
            cells.append(f"<td><b>{value}</b></td>" if entry.get("closest") == name else f"<td>{value}</td>")
        rows.append(f'<tr><th>{esc(name)}</th>{"".join(cells)}</tr>')
    rows.append("</table></div>")
    rows += [f'<p class="meta">{esc(e["author"])}: {esc(e["error"])}</p>' for e in entries if e.get("error")]
    rows.append('<p class="meta">Burrows\'s Delta of each side\'s samples to each author\'s held-out passages, with that '
                "author's own most frequent words (lower is closer); under each author, the runs that learned it "
                "(a mix learns its sources' authors). The prompts are the first run's.</p>")
    return "".join(rows)


def _forgetting(report: Any, variants: list[str]) -> str:
    """The forgetting check: each adapted side's general-English loss change, flagged over the threshold."""
    lines = [(name, forgetting_line(report, name)) for name in variants]
    lines = [(name, line) for name, line in lines if line]
    if not lines:
        return ""
    flagged = {n for n, side in (report.get("variants") or {}).items() if isinstance(side, dict) and side.get("flagged")}
    warn = ' class="warn"'
    items = "".join(f'<li{warn if name in flagged else ""}><b>{esc(name)}</b>: {esc(line)}</li>' for name, line in lines)
    return (f"<h2>Forgetting check</h2><ul>{items}</ul>"
            f'<p class="meta">Loss of base and adapted on general English text ({esc(report.get("source"))}), '
            'every token scored as plain text; a rise over the threshold is flagged.</p>')


def _prompt_section(index: int, item: Mapping[str, Any], variants: list[str]) -> str:
    samples = item.get("samples", {})
    rows = max((len(samples.get(v, [])) for v in variants), default=0)
    out = [f'<section><h3>Prompt {index + 1}</h3><div class="prompt">']
    if item.get("instruction"):
        out.append(f'<div class="label">{esc(item["instruction"])}</div>')
    out.append(f'<p class="text">{esc(item.get("prompt"))}</p></div>')
    if item.get("reference"):
        out.append(f'<details><summary class="meta">What the author wrote next</summary><p class="text">{esc(item["reference"])}</p></details>')
    out.append(f'<div class="grid" style="--cols: {len(variants)}">')
    out.extend(f'<div class="head">{esc(name)}</div>' for name in variants)
    for i in range(rows):
        for name in variants:
            sample = samples.get(name, [])[i] if i < len(samples.get(name, [])) else None
            kind = "cell base" if name == "base" else "cell"
            if sample is None:
                out.append(f'<div class="{kind}"></div>')
                continue
            info = f'sample {i + 1} · seed {esc(sample.get("seed"))} · {esc(sample.get("tokens"))} tokens · {esc(sample.get("stopped"))}'
            out.append(f'<div class="{kind}"><div class="label">{esc(name)}</div><div class="meta">{info}</div>'
                       f'<p class="text">{esc(sample.get("text"))}</p></div>')
    out.append("</div></section>")
    return "".join(out)


def render(data: Mapping[str, Any], events: Iterable[Mapping[str, Any]] = ()) -> str:
    """The page for a compare result (the structure ``compare_cli`` saves as compare.json)."""
    variants = list(data.get("variants") or ["base"])
    settings = data.get("settings", {})
    style = data.get("style") or {}
    config = data.get("config") or {}
    config_rows = "".join(
        f"<tr><th>{esc(section)}.{esc(key)}</th><td>{esc(value)}</td></tr>"
        for section, values in config.items() if isinstance(values, Mapping) for key, value in values.items()
    )
    setting_text = ", ".join(f"{key} {value}" for key, value in settings.items())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(data.get('run', 'compare'))}: base vs adapted</title><style>{CSS}</style></head><body><main>",
        f"<h1>{esc(data.get('run'))}: base vs adapted</h1>",
        f'<p class="meta">base model {esc(data.get("model"))} · {esc(data.get("device"))} · {esc(setting_text)} · '
        f'{esc(data.get("created") or time.strftime("%Y-%m-%d %H:%M"))}</p>',
    ]
    if style.get("reading"):
        parts.append(f'<p class="reading">{esc(style["reading"])}</p>')
    parts.append("<h2>Style scores</h2>" + _style_table(style, data.get("eval_loss"), variants, data.get("general_loss")))
    parts.append(_authors_table(style.get("by_author"), variants))
    if isinstance(data.get("forgetting"), Mapping):
        parts.append(_forgetting(data["forgetting"], variants))
    parts.append("<h2>Samples</h2>")
    parts.extend(_prompt_section(i, item, variants) for i, item in enumerate(data.get("prompts", [])))
    parts.append("<h2>Training</h2>" + loss_svg(events))
    parts.append(f"<details><summary>Run config</summary><div class=\"scroll\"><table>{config_rows}</table></div></details>")
    parts.append('<p class="meta">Written by stylelora-tui compare.</p></main></body></html>')
    return "\n".join(parts) + "\n"


def write(path: Path, data: Mapping[str, Any], events: Iterable[Mapping[str, Any]] = ()) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(data, events), encoding="utf-8")
    tmp.replace(path)
    return path
