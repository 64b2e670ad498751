"""Building a comparison in one go, and choosing what to compare (runs, prompts).

Prompts come from the run's held-out split (eval.jsonl), so neither side has
seen them. The generation process (one model in memory; the base is the same
weights with the adapter disabled) writes N samples per side; the samples are
scored against the author's held-out passages (``stylometry``) and the
held-out loss of both sides is computed. The result is what ``RUN/compare.json``
holds (the model card quotes it) and what compare.html renders.

``compare`` builds one in a go (``stylelora-tui compare``, or a script); the
app builds the same result through the same ``CompareSession``, prompt by prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from stylelora_tui.runs.run import Run, RunError
from stylelora_tui.runs.workspace import Workspace


def pick_prompts(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` records spread evenly over the held-out split (not just its first few)."""
    if count >= len(records):
        return list(records)
    step = len(records) / count
    return [records[int(i * step)] for i in range(count)]


# --------------------------------------------------------------------------- which runs


def has_final_adapter(run: Run) -> bool:
    return (run.adapter_dir / "adapter_config.json").exists()


def candidate_runs(workspace: Workspace) -> list[Run]:
    """Runs that can be compared: a final adapter, or at least one checkpoint."""
    return [run for run in workspace.runs() if has_final_adapter(run) or run.latest_checkpoint()]


def default_runs(workspace: Workspace) -> list[Run]:
    """What to compare when told nothing: the newest finished run, else the newest with a checkpoint."""
    candidates = candidate_runs(workspace)
    finished = [r for r in candidates if has_final_adapter(r)]
    return (finished or candidates)[-1:]


def run_choices(workspace: Workspace, picked: list[Run]) -> list[tuple[str, str, bool]]:
    """Rows for a run picker (label, folder, ticked), the runs compared now ticked."""
    current = {str(run.path) for run in picked}
    choices = []
    for run in candidate_runs(workspace):
        checkpoint = "" if has_final_adapter(run) else f", {run.latest_checkpoint().name}"  # type: ignore[union-attr]
        choices.append((f"{run.name} ({run.state}{checkpoint})", str(run.path), str(run.path) in current))
    return choices


# --------------------------------------------------------------------------- in one go


def compare(runs: Run | list[Run], *, prompts: int = 3, settings: dict[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, general: Path | None = None) -> dict[str, Any]:
    """Generate, score and return the compare result (what compare.json holds); raises ``RunError``.

    ``runs``: one run, or several of one base model, compared side by side
    with the base (one model in memory, the adapters switched); the held-out
    prompts are the first run's. ``settings``: sampling settings
    (``generation.protocol.SAMPLING_DEFAULTS`` for those not given);
    ``progress`` gets a line per step; ``general``: the forgetting check's
    text (default: the built-in general English sample).
    """
    from stylelora_tui.compare.forgetting import GeneralTextError, general_passages
    from stylelora_tui.compare.session import CompareSession, eval_split
    from stylelora_tui.generation.client import GenerationClient, GenerationProcessError
    from stylelora_tui.generation.protocol import GenerationError, sampling_problem
    from stylelora_tui.generation.run_adapters import resolve_run

    say = progress or (lambda message: None)
    runs = [runs] if isinstance(runs, Run) else list(runs)
    the_run = runs[0]
    try:
        for run in runs:
            resolve_run(run.path)  # a clear message before a process starts
        eval_path = eval_split(the_run)
        if not eval_path.exists():
            raise RunError(f"no held-out split at {eval_path}: re-run `stylelora-tui prepare` (it writes eval.jsonl)")
        session = CompareSession.for_runs(runs, settings)
        session.general_path = general
        general_passages(general)  # a bad file is refused before the model loads
    except GeneralTextError as exc:
        raise RunError(f"--general: {exc}") from None
    except (GenerationError, ValueError, OSError) as exc:
        raise RunError(str(exc)) from None
    if not session.records:
        raise RunError(f"{eval_path} has no records to prompt with")
    if problem := sampling_problem(session.settings):
        raise RunError(problem)
    chosen = pick_prompts(session.records, max(1, prompts))
    say(f"loading the model (once, with the {'adapter' if len(runs) == 1 else f'{len(runs)} adapters'} beside it)")
    try:
        with GenerationClient([run.path for run in runs]) as client:
            session.set_ready(client.start())
            for index, record in enumerate(chosen, 1):
                item = session.start(record, f"held-out prompt {index}/{len(chosen)}")
                for event in client.events(client.request("generate", **session.request_fields(item))):
                    if session.take(item, [event]):
                        raise RunError(f"generation failed: {event['error']}")
                    if event.get("done"):
                        say(f"prompt {index}/{len(chosen)}: {event['variant']} sample {event['sample'] + 1}/{item.settings['n']}")
                session.finish(item, cancelled=False)
            for what, fields in zip(("held-out", "general English (the forgetting check)"), session.loss_requests()):
                say(f"{what} loss of {'both sides' if len(runs) == 1 else f'all {len(runs) + 1} sides'}")
                if errors := session.take_losses(client.collect(client.request("eval_loss", **fields))):
                    say(errors[-1])
    except GenerationProcessError as exc:
        raise RunError(str(exc)) from None
    session.score()
    return session.result()
