"""The workspace's adapters, for the app's Adapters section: what each is, how it was made, what it can do.

``list_adapters`` reads the small files of every finished run that holds an
adapter (``adapter/adapter_config.json``, ``adapter/stylelora.json``,
``config.yaml``, and a mix's ``mix.json``, its recipe). ``CliJob`` runs one
``stylelora-tui`` command (``mix``, ``export``) in its own process, its
output read line by line, cancellable: PEFT's SVD mixes take minutes, and the
CLI already picks the fastest thread count and cleans up a cancelled mix.

No heavy imports (torch, PEFT): the app imports this module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylelora_tui.mix import DEFAULT_DENSITY, USES_DENSITY, MixError, plan_mix
from stylelora_tui.runs.run import Run, RunError
from stylelora_tui.runs.workspace import Workspace

__all__ = ["DEFAULT_DENSITY", "MERGEABLE_PEFT_TYPES", "METHODS", "USES_DENSITY", "AdapterInfo", "CliJob", "MixError",
           "check_mix", "list_adapters"]

# stylelora_tui.mix's methods (PEFT's combination_type), in the order the app offers them: the usual first.
METHODS = ("ties", "dare_ties", "dare_linear", "linear", "magnitude_prune", "cat",
           "svd", "ties_svd", "dare_ties_svd", "dare_linear_svd", "magnitude_prune_svd")
MERGEABLE_PEFT_TYPES = ("LORA", "IA3")  # prompt and prefix tuning add tokens: nothing to merge into the weights


@dataclass(frozen=True)
class AdapterInfo:
    """One finished run's adapter, as its files describe it."""

    name: str
    path: Path
    peft_type: str = "LORA"
    method: str = "lora"  # the config's lora.method (lora, loraplus, ia3, ...)
    r: int | None = None
    lora_alpha: float | None = None
    use_rslora: bool = False
    use_dora: bool = False
    target_modules: tuple[str, ...] = ()
    base_model: str = ""
    data_format: str = "instruction"
    recipe: dict[str, Any] | None = None  # mix.json, for a mix
    problem: str = ""  # a file that could not be read

    @property
    def is_mix(self) -> bool:
        return self.recipe is not None

    @property
    def not_mixable(self) -> str:
        """Why add_weighted_adapter cannot take this adapter ('' when it can)."""
        if self.problem:
            return self.problem
        if self.peft_type != "LORA":
            return f"a {self.peft_type} adapter (add_weighted_adapter mixes LoRA only)"
        if self.use_rslora or self.use_dora:
            return f"a {'rsLoRA' if self.use_rslora else 'DoRA'} adapter (PEFT's weighted combination is wrong for it)"
        return ""

    def shape_text(self) -> str:
        """PEFT type and rank, short: 'LoRA r8', 'DoRA r16', 'IA3'."""
        if self.peft_type != "LORA":
            return self.peft_type
        kind = "DoRA" if self.use_dora else "rsLoRA" if self.use_rslora else "LoRA"
        return f"{kind} r{self.r}" if self.r else kind

    def made_text(self) -> str:
        """How it was made: 'trained (lora)' or the mix's method and weights."""
        if self.recipe is None:
            return f"trained ({self.method})"
        return recipe_text(self.recipe)

    def uses(self) -> list[str]:
        uses = ["compare (c)"]
        uses.append("merge into the base (e)" if self.peft_type in MERGEABLE_PEFT_TYPES else "no merge (adds tokens)")
        uses.append(f"not mixable: {self.not_mixable}" if self.not_mixable else "mix with another LoRA (m)")
        return uses

    def details(self) -> str:
        """A few lines for the section's detail pane."""
        lines = [f"{self.name}: {self.made_text()}"]
        if self.recipe is not None:
            sources = ", ".join(f"{s.get('name')} (r{s.get('r')}) x {s.get('weight'):g}" for s in self.recipe.get("sources", []))
            lines.append(f"sources: {sources}")
        alpha = f", alpha {self.lora_alpha:g}" if self.lora_alpha else ""
        lines.append(f"{self.shape_text()}{alpha}, format {self.data_format}, targets {', '.join(self.target_modules) or '-'}")
        lines.append(f"base: {self.base_model or '?'}")
        lines.append("uses: " + "; ".join(self.uses()))
        return "\n".join(lines)


def recipe_text(recipe: dict[str, Any]) -> str:
    """'ties 0.6 a + 0.4 b, density 0.5' from a mix.json."""
    parts = " + ".join(f"{s.get('weight', 0):g} {s.get('name')}" for s in recipe.get("sources", []))
    density = recipe.get("density")
    return f"{recipe.get('method')} {parts}" + (f", density {density:g}" if density is not None else "")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def adapter_info(run: Run) -> AdapterInfo | None:
    """The run's adapter, or None when the run has no final adapter (not finished, or failed)."""
    from stylelora_tui.config import ConfigError
    from stylelora_tui.prompting import record_format

    config_file = run.adapter_dir / "adapter_config.json"
    if not config_file.exists():
        return None
    try:
        adapter, meta, recipe = _json(config_file), _json(run.adapter_dir / "stylelora.json"), _json(run.path / "mix.json")
        cfg = run.config()
    except (ValueError, ConfigError) as exc:
        return AdapterInfo(run.name, run.path, problem=str(exc).splitlines()[0])
    targets = adapter.get("target_modules") or []
    lora = cfg.get("lora", {})
    return AdapterInfo(
        name=run.name, path=run.path, peft_type=str(adapter.get("peft_type") or "LORA"),
        method=str(lora.get("method") or "lora"), r=adapter.get("r"), lora_alpha=adapter.get("lora_alpha"),
        use_rslora=bool(adapter.get("use_rslora")), use_dora=bool(adapter.get("use_dora")),
        target_modules=tuple([targets] if isinstance(targets, str) else sorted(targets)),
        base_model=str(meta.get("base_model") or cfg.get("model", {}).get("name") or ""),
        data_format=record_format(cfg), recipe=recipe or None,
    )


def list_adapters(workspace: Workspace) -> list[AdapterInfo]:
    """Every completed run of the workspace that holds an adapter, by name."""
    found = []
    for run in workspace.runs():
        if run.state != "completed":
            continue
        info = adapter_info(run)
        if info is not None:
            found.append(info)
    return found


def default_weights(count: int) -> list[float]:
    return [round(1.0 / count, 4)] * count if count else []


def default_mix_name(names: list[str], method: str, taken: set[str]) -> str:
    """'a+b-ties', made unique among ``taken``."""
    stem = "+".join(name[-16:].lstrip("-_.") for name in names) + f"-{method}"
    name, counter = stem, 1
    while name in taken:
        counter += 1
        name = f"{stem}-{counter}"
    return name


def check_mix(workspace: Workspace, names: list[str], *, method: str, weights: list[float],
              density: float | None, name: str) -> list[str]:
    """The mix's checks (``plan_mix``: recipe, name, runs, compatibility) without running it: its notes.

    Raises MixError naming the adapters and the mismatch (a run not found too).
    """
    try:
        plan = plan_mix(workspace, names, method=method, weights=weights, density=density, name=name)
    except RunError as exc:
        raise MixError(str(exc)) from None
    return plan.notes


def mix_arguments(workspace: Workspace, names: list[str], *, method: str, weights: list[float],
                  density: float | None, name: str) -> list[str]:
    """The ``stylelora-tui mix`` arguments for this recipe.

    Values joined to their options and the runs after ``--``: a negative weight or a name starting with a dash
    is not taken for an option.
    """
    args = ["mix", f"--workspace={workspace.root}", f"--method={method}", "--weights=" + ",".join(f"{w:g}" for w in weights)]
    if density is not None:
        args.append(f"--density={density:g}")
    return args + [f"--name={name}", "--", *names]


@dataclass
class CliJob:
    """One ``stylelora-tui`` command in its own process: its output lines, then its exit code.

    ``cancel`` sends SIGTERM: ``mix`` stops, removes its half-made folder and
    exits 2 ("cancelled"); other commands end as SIGTERM ends them.
    """

    args: list[str]
    lines: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    cancelled: bool = False

    def start(self) -> CliJob:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([sys.executable, "-m", "stylelora_tui.cli", *self.args], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env)
        return self

    def follow(self) -> Iterator[str]:
        """Each output line as it comes (stripped, blank ones skipped), until the process ends."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if line:
                self.lines.append(line)
                yield line
        self.process.wait()

    def cancel(self) -> None:
        self.cancelled = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def error_text(self) -> str:
        """What the command said went wrong: its 'stylelora-tui CMD: ...' line(s), else its last lines."""
        said = [line.split(": ", 1)[1] for line in self.lines if line.startswith("stylelora-tui ") and ": " in line]
        return "\n".join(said) or "\n".join(self.lines[-5:]) or f"exit code {self.returncode}"
