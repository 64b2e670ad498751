"""Adapter arithmetic: several finished runs' LoRA adapters combined into a new run.

``mix`` checks every rule it can from the runs' small files (adapter_config.json,
stylelora.json, config.yaml) before anything heavy is loaded, then calls
PEFT's ``PeftModel.add_weighted_adapter`` in a child process (``isolated``)
and writes the result as a run folder like a trained one: ``config.yaml``
(the first run's, with the mixed adapter's rank and a note), ``status.json``
(completed), ``adapter/`` (PEFT's files, the tokenizer, stylelora.json) and
``mix.json`` (the recipe). Everything is written into a temporary folder
first and renamed into ``runs/`` at the end: a failure leaves no half run.

Heavy imports (torch, transformers, peft) happen in the child only.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylelora_tui.paths import BadName, check_name
from stylelora_tui.runs.run import Run, timestamp, write_json_atomically
from stylelora_tui.runs.workspace import Workspace

# PEFT's combination_type names. same_rank: PEFT combines the A and B factors entry by entry, so every
# adapter needs the same r ("All adapters must have the same r"), and we ask for the same target modules
# too: a module only some adapters have would silently get those adapters alone (TIES's sign election and
# DARE's rescaling would run over a different set of adapters per module). cat and the *_svd types work
# on each module's delta weight, so ranks and target modules may differ.
SAME_RANK = ("linear", "ties", "dare_ties", "dare_linear", "magnitude_prune")
ANY_RANK = ("cat", "svd", "ties_svd", "dare_ties_svd", "dare_linear_svd", "magnitude_prune_svd")
METHODS = SAME_RANK + ANY_RANK
USES_DENSITY = ("ties", "dare_ties", "dare_linear", "magnitude_prune", "ties_svd", "dare_ties_svd", "dare_linear_svd",
                "magnitude_prune_svd")
DEFAULT_DENSITY = 0.5
MIXED_ADAPTER = "default"  # PEFT saves the adapter named "default" at the folder's top level


class MixError(RuntimeError):
    """Adapters that cannot be mixed (or a recipe that cannot be used), with a message for the user."""


@dataclass
class Source:
    run: Run
    adapter_config: dict[str, Any]
    meta: dict[str, Any]  # the adapter's stylelora.json
    cfg: dict[str, Any]

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def base_model(self) -> str:
        return str(self.meta.get("base_model") or self.cfg["model"]["name"])

    @property
    def data_format(self) -> str:
        from stylelora_tui.prompting import record_format

        return record_format(self.cfg)

    @property
    def rank(self) -> int:
        return int(self.adapter_config.get("r") or 0)

    @property
    def rank_pattern(self) -> dict[str, int]:
        return dict(self.adapter_config.get("rank_pattern") or {})

    @property
    def target_modules(self) -> list[str]:
        targets = self.adapter_config.get("target_modules") or []
        return [targets] if isinstance(targets, str) else sorted(targets)


@dataclass
class MixPlan:
    workspace: Workspace
    name: str
    method: str
    weights: list[float]
    density: float | None
    sources: list[Source]
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.workspace.runs_dir / self.name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise MixError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _source(run: Run) -> Source:
    from stylelora_tui.config import ConfigError

    config_file = run.adapter_dir / "adapter_config.json"
    if not config_file.exists():
        raise MixError(f"run {run.name} has no final adapter in {run.adapter_dir} (state: {run.state}): "
                       "only finished runs can be mixed; train it to the end first")
    try:
        cfg = run.config()
    except ConfigError as exc:
        raise MixError(f"run {run.name}: its config.yaml cannot be read: {exc}") from None
    return Source(run, _read_json(config_file), _read_json(run.adapter_dir / "stylelora.json"), cfg)


def check_recipe(count: int, method: str, weights: list[float], density: float | None) -> float | None:
    """The density to use; MixError for a recipe that does not fit the method or the runs."""
    if count < 2:
        raise MixError(f"mix takes at least two runs ({count} given)")
    if method not in METHODS:
        raise MixError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if len(weights) != count:
        raise MixError(f"{len(weights)} weight(s) for {count} runs: give one weight per run, in the runs' order "
                       f"(e.g. --weights {','.join(['0.5'] * count)})")
    if not all(math.isfinite(weight) for weight in weights):
        raise MixError(f"weights must be finite numbers ({', '.join(map(str, weights))})")
    if method not in USES_DENSITY:
        if density is not None:
            raise MixError(f"method {method} does not prune, so it takes no density; density goes with "
                           f"{', '.join(USES_DENSITY)}")
        return None
    if density is None:
        return DEFAULT_DENSITY
    if not (0.0 < density <= 1.0):
        raise MixError(f"density {density} is out of range: it is the share of each adapter's weights kept, "
                       "in (0, 1] (1 keeps all)")
    return density


def check_compatible(sources: list[Source], method: str) -> None:
    """MixError naming both adapters and what differs, before anything is loaded."""
    for source in sources:
        peft_type = source.adapter_config.get("peft_type", "LORA")
        if peft_type != "LORA":
            raise MixError(f"run {source.name} holds a {peft_type} adapter: add_weighted_adapter mixes LoRA adapters only")
        for flag, what in (("use_rslora", "rsLoRA"), ("use_dora", "DoRA")):
            if source.adapter_config.get(flag):
                raise MixError(
                    f"run {source.name} is a {what} adapter ({flag}: true): PEFT's weighted combination gives a wrong "
                    f"result for {what} (the new adapter keeps {flag} but neither its scaling nor "
                    f"{'its rank-stabilised alpha / sqrt(r)' if flag == 'use_rslora' else 'the magnitude vector'} is "
                    "recomputed; an open PEFT issue), so it is refused; mix plain LoRA adapters")
        if source.adapter_config.get("target_parameters"):
            raise MixError(f"run {source.name} targets parameters (target_parameters): add_weighted_adapter does not support it")
    first = sources[0]
    for other in sources[1:]:
        pair = f"runs {first.name} and {other.name}"
        if other.base_model != first.base_model:
            raise MixError(f"{pair} have different base models ({first.name}: {first.base_model}; "
                           f"{other.name}: {other.base_model}): adapters mix only on the base they were trained on")
        if other.data_format != first.data_format:
            raise MixError(f"{pair} have different data formats ({first.name}: {first.data_format}; {other.name}: "
                           f"{other.data_format}): their prompts are laid out differently, so a mix would answer neither")
        if method in SAME_RANK and (other.rank, other.rank_pattern) != (first.rank, first.rank_pattern):
            raise MixError(f"{pair} have different ranks ({first.name}: r={first.rank}; {other.name}: r={other.rank}): "
                           f"{method} needs the same r (PEFT: \"All adapters must have the same r\"); "
                           f"cat or the *_svd methods ({', '.join(ANY_RANK[1:])}) mix different ranks")
        if method in SAME_RANK and other.target_modules != first.target_modules:
            only_first = sorted(set(first.target_modules) - set(other.target_modules))
            only_other = sorted(set(other.target_modules) - set(first.target_modules))
            raise MixError(f"{pair} have different target modules (only {first.name}: {', '.join(only_first) or 'none'}; "
                           f"only {other.name}: {', '.join(only_other) or 'none'}): {method} combines the adapters "
                           "module by module and needs the same ones; cat or the *_svd methods accept different ones")


def plan_mix(workspace: Workspace, run_names: list[str], *, method: str, weights: list[float],
             density: float | None, name: str) -> MixPlan:
    """Every check that needs no model: the name, the recipe, the runs and their compatibility."""
    try:
        check_name(name, "run name")
    except BadName as exc:
        raise MixError(str(exc)) from None
    if (workspace.runs_dir / name).exists():
        raise MixError(f"a run named {name!r} already exists in {workspace.runs_dir}: choose another --name")
    density = check_recipe(len(run_names), method, weights, density)
    runs = [workspace.find_run(run_name) for run_name in run_names]
    seen: dict[Path, str] = {}
    for given, run in zip(run_names, runs):
        if run.path in seen:
            raise MixError(f"run {run.name} is given twice ({seen[run.path]!r} and {given!r}): give each run once, "
                           "and its share through --weights")
        seen[run.path] = given
    sources = [_source(run) for run in runs]
    check_compatible(sources, method)
    plan = MixPlan(workspace, name, method, list(weights), density, sources)
    if len({str(s.cfg["model"].get("load_in_4bit")) for s in sources}) > 1:
        plan.notes.append(f"the runs were trained on the base in different precisions (4-bit or not); the mix uses "
                          f"{sources[0].name}'s config, so it is served like {sources[0].name}")
    return plan


# --------------------------------------------------------------------------- the child process


def build_adapter(request: dict[str, Any], *, progress: Callable[[str, float | None], None],
                  cancel: threading.Event) -> dict[str, Any]:
    """``add_weighted_adapter`` on the sources, saved into ``request["out"]`` (run in a child process)."""
    import torch

    cuda = torch.cuda.is_available()
    if request["method"].endswith("svd") and not cuda:
        # BLAS SVD scales badly with threads here: two demo adapters took 14-23 s with one thread, ~600 s with two.
        torch.set_num_threads(1)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    device_map = {"": torch.cuda.current_device()} if cuda else None
    # float32: the mixed factors are written into the new adapter's tensors, which take the base's dtype.
    progress(f"loading the base model {request['base_path']} (float32, {'GPU' if cuda else 'CPU'})", None)
    model: Any = AutoModelForCausalLM.from_pretrained(request["base_path"], dtype=torch.float32, device_map=device_map)
    names = []
    for index, (run_name, adapter_dir) in enumerate(request["sources"]):
        if cancel.is_set():
            raise MixError("cancelled")
        progress(f"loading adapter {index + 1}/{len(request['sources'])}: {run_name}", None)
        adapter_name = f"source_{index}"  # PEFT module keys: no dots
        if index == 0:
            model = PeftModel.from_pretrained(model, adapter_dir, adapter_name=adapter_name)
        else:
            model.load_adapter(adapter_dir, adapter_name=adapter_name)
        names.append(adapter_name)
    if cancel.is_set():
        raise MixError("cancelled")
    density = request["density"]
    progress(f"combining with add_weighted_adapter ({request['method']}"
             + (f", density {density}" if density is not None else "")
             + (f", {torch.get_num_threads()} CPU thread(s)" if not cuda else "") + ")", None)
    combine_started = time.perf_counter()
    model.add_weighted_adapter(adapters=names, weights=request["weights"], adapter_name=MIXED_ADAPTER,
                               combination_type=request["method"], density=density)
    combine_s = time.perf_counter() - combine_started
    progress(f"saving the mixed adapter ({combine_s:.1f} s to combine)", None)
    out = Path(request["out"])
    model.save_pretrained(str(out), selected_adapters=[MIXED_ADAPTER], safe_serialization=True)
    AutoTokenizer.from_pretrained(request["sources"][0][1]).save_pretrained(str(out))
    saved = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    return {"r": saved.get("r"), "lora_alpha": saved.get("lora_alpha"), "target_modules": saved.get("target_modules"),
            "combine_s": round(combine_s, 2), "total_s": round(time.perf_counter() - started, 2),
            "torch_threads": None if cuda else torch.get_num_threads(), "device": "cuda" if cuda else "cpu"}


# --------------------------------------------------------------------------- writing the run


def _run_config(plan: MixPlan, built: dict[str, Any]) -> dict[str, Any]:
    from stylelora_tui.config import ALL_PROJECTIONS

    cfg = json.loads(json.dumps(plan.sources[0].cfg))  # a deep copy of plain data
    targets = set(built["target_modules"] or [])
    cfg["lora"].update(r=built["r"], lora_alpha=built["lora_alpha"],
                       target_modules=[name for name in ALL_PROJECTIONS if name in targets] or sorted(targets))
    return cfg


def _config_note(plan: MixPlan) -> str:
    parts = ", ".join(f"{s.name} x {w:g}" for s, w in zip(plan.sources, plan.weights))
    return (f"# Not trained: a mix of adapters ({plan.method}: {parts}; recipe in mix.json), made with PEFT's\n"
            f"# add_weighted_adapter. The settings are {plan.sources[0].name}'s, with the mixed adapter's rank,\n"
            "# alpha and target modules.\n")


def mix(plan: MixPlan, *, progress: Callable[[str], None] = lambda message: None,
        cancel: threading.Event | None = None) -> Run:
    """Build the mixed adapter in a child process and write the new run; the Run."""
    from stylelora_tui import config as config_mod
    from stylelora_tui.export import sixteen_bit_base
    from stylelora_tui.generation.protocol import GenerationError
    from stylelora_tui.generation.run_adapters import resolve_run
    from stylelora_tui.isolated import IsolatedProcessDied, run_isolated

    try:
        base = resolve_run(plan.sources[0].run.path)
    except GenerationError as exc:
        raise MixError(str(exc)) from None
    plan.workspace.ensure()
    created = timestamp()
    tmp = Path(tempfile.mkdtemp(prefix=f".mix-{plan.name}-", dir=plan.workspace.root))  # not under runs/: never listed
    try:
        request = {"base_path": sixteen_bit_base(base.base_path), "method": plan.method, "weights": plan.weights,
                   "density": plan.density, "out": str(tmp / "adapter"),
                   "sources": [(s.name, str(s.run.adapter_dir)) for s in plan.sources]}
        try:
            built = run_isolated(build_adapter, request, progress=lambda text, _fraction: progress(text),
                                 cancel=cancel, errors=(MixError,))
        except (IsolatedProcessDied, RuntimeError) as exc:
            if isinstance(exc, MixError):
                raise
            raise MixError(f"PEFT could not mix the adapters: {exc}") from None
        cfg = _run_config(plan, built)
        recipe = {
            "method": plan.method, "combination_type": plan.method, "weights": plan.weights, "density": plan.density,
            "sources": [{"name": s.name, "path": str(s.run.path), "adapter": str(s.run.adapter_dir), "weight": w, "r": s.rank}
                        for s, w in zip(plan.sources, plan.weights)],
            "r": built["r"], "target_modules": cfg["lora"]["target_modules"], "base_model": plan.sources[0].base_model,
            "made_with": "peft.PeftModel.add_weighted_adapter", "peft_version": _peft_version(),
            "device": built["device"], "torch_threads": built["torch_threads"], "combine_s": built["combine_s"],
            "total_s": built["total_s"], "created_at": created, "notes": plan.notes,
        }
        meta = {"base_model": plan.sources[0].base_model, "base_model_path": base.base_path, "backend": "peft",
                "config": cfg, "mix": recipe}
        (tmp / "adapter" / "stylelora.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        write_json_atomically(tmp / "mix.json", recipe)
        write_json_atomically(tmp / "status.json", {"state": "completed", "created_at": created, "ended_at": timestamp(),
                                                    "updated_at": timestamp(), "exit_code": 0, "mix": True})
        (tmp / "config.yaml").write_text(_config_note(plan) + config_mod.to_yaml(cfg), encoding="utf-8")
        try:
            tmp.rename(plan.path)  # fails if the name was taken meanwhile: never over someone else's run
        except OSError as exc:
            raise MixError(f"cannot create {plan.path}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(plan.path)


def _peft_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("peft")
    except PackageNotFoundError:
        return None

