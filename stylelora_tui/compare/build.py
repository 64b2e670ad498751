"""Building a comparison: base vs adapted samples, scored, as one result.

Prompts come from the run's held-out split (eval.jsonl), so neither side has
seen them. The generation process (one model in memory; the base is the same
weights with the adapter disabled) writes N samples per side; the samples are
scored against the author's held-out passages (``stylometry``) and the
held-out loss of both sides is computed. The result is what ``RUN/compare.json``
holds (the model card quotes it) and what compare.html renders; the CLI and
the app build it with the same functions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stylelora_tui.runs.run import Run, RunError

COMPARE_JSON = "compare.json"


def pick_prompts(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` records spread evenly over the held-out split (not just its first few)."""
    if count >= len(records):
        return list(records)
    step = len(records) / count
    return [records[int(i * step)] for i in range(count)]


SAMPLE_FIELDS = ("seed", "text", "tokens", "stopped")


def prompt_item(record: dict[str, Any], samples: dict[str, list[dict[str, Any]]], variants: list[str]) -> dict[str, Any]:
    """One prompt of a compare result: the record, the author's continuation, each side's samples."""
    return {
        "id": record.get("id"), "instruction": record.get("instruction"), "prompt": record.get("input"),
        "reference": record.get("output"),
        "samples": {v: [{k: sample.get(k) for k in SAMPLE_FIELDS} for sample in samples.get(v, [])] for v in variants},
    }


def build_result(*, run_name: str, ready: dict[str, Any] | None, settings: dict[str, Any], variants: list[str],
                 items: list[dict[str, Any]], style: dict[str, Any], losses: dict[str, Any],
                 config: dict[str, Any]) -> dict[str, Any]:
    """The compare result: what compare.json holds and compare.html renders (CLI and app alike)."""
    return {
        "run": run_name, "created": time.strftime("%Y-%m-%d %H:%M"), "model": (ready or {}).get("model"),
        "device": (ready or {}).get("device"), "settings": settings, "variants": variants, "prompts": items,
        "style": style, "eval_loss": losses, "config": config,
    }


def compare(the_run: Run, *, prompts: int, samples: int, seed: int, max_new_tokens: int, temperature: float,
            top_p: float, progress: Any = None) -> dict[str, Any]:
    """Generate, score and return the compare result (what compare.json holds)."""
    from stylelora_tui.generation.server import GenerationError, resolve_run
    from stylelora_tui.generation.client import GenerationClient, GenerationProcessError, samples_by_variant
    from stylelora_tui.prompting import read_jsonl
    from stylelora_tui.compare.stylometry import style_report

    say = progress or (lambda message: None)
    try:
        resolve_run(the_run.path)  # a clear message before a process starts
    except GenerationError as exc:
        raise RunError(str(exc)) from None
    cfg = the_run.config()
    eval_path = Path(cfg["data"]["corpus"]) / "eval.jsonl"
    if not eval_path.exists():
        raise RunError(f"no held-out split at {eval_path}: re-run `stylelora-tui prepare` (it writes eval.jsonl)")
    records = read_jsonl(eval_path)
    if not records:
        raise RunError(f"{eval_path} has no records to prompt with")
    chosen = pick_prompts(records, max(1, prompts))
    variants = ["base", the_run.name]
    settings = {"samples": samples, "seed": seed, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
    items = []
    say("loading the model (once, with the adapter beside it)")
    try:
        with GenerationClient([the_run.path]) as client:
            ready = client.start()
            for index, record in enumerate(chosen, 1):
                rid = client.generate(record=record, variants=variants, n=samples, seed=seed, temperature=temperature,
                                      top_p=top_p, max_new_tokens=max_new_tokens)
                events = []
                for event in client.events(rid):
                    if "error" in event:
                        raise RunError(f"generation failed: {event['error']}")
                    if event.get("done"):
                        say(f"prompt {index}/{len(chosen)}: {event['variant']} sample {event['sample'] + 1}/{samples}")
                    events.append(event)
                items.append(prompt_item(record, samples_by_variant(events), variants))
            say("held-out loss of both sides")
            losses = {e["variant"]: {"eval_loss": e["eval_loss"], "perplexity": e["perplexity"], "tokens": e["tokens"]}
                      for e in client.collect(client.eval_loss(variants=variants)) if "eval_loss" in e}
    except GenerationProcessError as exc:
        raise RunError(str(exc)) from None
    texts = {v: [s["text"] for item in items for s in item["samples"][v]] for v in variants}
    style = style_report([r["output"] for r in records], texts["base"], {the_run.name: texts[the_run.name]})
    return build_result(run_name=the_run.name, ready=ready, settings=settings, variants=variants, items=items,
                        style=style, losses=losses, config=cfg)
