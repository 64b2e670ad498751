"""Several style adapters on one vLLM server: ``export RUN_A RUN_B ... --vllm DIR``.

Writes one PEFT folder per run (a copy of its final ``adapter/``), a
``serve.sh`` that starts ``vllm serve BASE --enable-lora`` with every adapter
as a LoRA module, and a ``README.md`` with a request example per adapter.

vLLM serves plain LoRA only: A/B matrices on the base's linear layers, one
base model per server. What it rejects (DoRA, trained biases,
``modules_to_save``, LoRA on the embedding or the LM head, mixed bases, ranks
above 512) is refused here, before anything is written, naming the run.

Nothing heavy is imported: the adapters' ``adapter_config.json`` is read as
JSON and the folders are copied as files.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from stylelora_tui.export import ExportError, hub_base_id, lora_runtime_problems, sixteen_bit_base
from stylelora_tui.runs.run import Run

#: The values vLLM accepts for ``--max-lora-rank``.
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
EXAMPLE_PROMPT = "The harbour was quiet that night, and the lamp"  # no quote: it sits in a single-quoted shell word


@dataclass(frozen=True)
class VllmAdapter:
    run_name: str
    name: str  # the LoRA module name a request asks for ("model"), also its folder's name
    source: Path
    rank: int
    base_model: str  # as the run's config names it ("demo", a Hub id, a folder)
    hub_id: str | None
    local_path: str
    data_format: str

    @property
    def base(self) -> str:
        """What a server loads: the Hub id when known, else the local folder."""
        return self.hub_id or self.local_path


@dataclass(frozen=True)
class VllmExport:
    path: Path
    adapters: list[VllmAdapter]
    max_lora_rank: int
    base: str
    notes: list[str]

    @property
    def serve_script(self) -> Path:
        return self.path / "serve.sh"

    @property
    def readme(self) -> Path:
        return self.path / "README.md"


def vllm_rank(rank: int, *, run_name: str = "") -> int:
    """The smallest ``--max-lora-rank`` value vLLM accepts that holds ``rank``."""
    for allowed in VLLM_RANKS:
        if rank <= allowed:
            return allowed
    who = f"run {run_name}: " if run_name else ""
    raise ExportError(f"{who}LoRA rank {rank} is above 512, the largest rank vLLM serves; train with lora.r <= 512")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _problems(config: dict[str, Any]) -> list[str]:
    """Why vLLM would refuse this adapter (empty: it serves it)."""
    return lora_runtime_problems(config, "vLLM")


def inspect_adapter(run: Run) -> VllmAdapter:
    """The run's final adapter as vLLM would see it; ExportError naming the run when vLLM would refuse it."""
    config_path = run.adapter_dir / "adapter_config.json"
    if not config_path.exists():
        raise ExportError(
            f"run {run.name} has no final adapter in {run.adapter_dir} (state: {run.state}); train it to the end first"
        )
    config = _read_json(config_path)
    if not config:
        raise ExportError(f"run {run.name}: unreadable adapter config {config_path}")
    problems = _problems(config)
    if problems:
        raise ExportError(f"run {run.name}: vLLM would refuse its adapter: " + "; ".join(problems))
    # rank_pattern gives some layers their own rank; the server must hold the largest.
    ranks = [int(config.get("r") or 8), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
    meta = _read_json(run.adapter_dir / "stylelora.json")
    peft_base = str(config.get("base_model_name_or_path") or "")
    base_model = str(meta.get("base_model") or peft_base)
    if not base_model:
        raise ExportError(f"run {run.name}: neither stylelora.json nor adapter_config.json names the base model")
    hub_id = hub_base_id(base_model) or (hub_base_id(peft_base) if peft_base else None)
    local = str(meta.get("base_model_path") or peft_base or base_model)
    data_format = str(((meta.get("config") or {}).get("data") or {}).get("format") or "instruction")
    return VllmAdapter(
        run_name=run.name, name=re.sub(r"[^A-Za-z0-9_-]", "_", run.name), source=run.adapter_dir,
        rank=max(ranks), base_model=base_model, hub_id=sixteen_bit_base(hub_id) if hub_id else None,
        local_path=local, data_format=data_format,
    )


def check_combination(adapters: Sequence[VllmAdapter]) -> None:
    """One base model per server, and one name per adapter."""
    first = adapters[0]
    for other in adapters[1:]:
        if other.base != first.base:
            raise ExportError(
                f"runs {first.run_name} and {other.run_name} have different base models ({first.base} and "
                f"{other.base}); one vLLM server serves adapters of one base model"
            )
    seen: dict[str, str] = {}
    for adapter in adapters:
        if adapter.name in seen:
            raise ExportError(
                f"runs {seen[adapter.name]} and {adapter.run_name} would both be served as {adapter.name!r}; name each run once"
            )
        seen[adapter.name] = adapter.run_name
    for adapter in adapters:
        vllm_rank(adapter.rank, run_name=adapter.run_name)


def _check_destination(out_dir: Path, adapters: Sequence[VllmAdapter], force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir} exists and is not empty; choose another folder, or --force to replace it")
    for adapter in adapters:
        source = adapter.source.resolve()
        if out_dir == source or out_dir in source.parents or source in out_dir.parents:
            raise ExportError(f"{out_dir} holds (or sits in) run {adapter.run_name}'s adapter; choose a folder outside the runs")


def serve_script(adapters: Sequence[VllmAdapter], max_lora_rank: int) -> str:
    """``serve.sh``: the adapters are found next to the script, so the folder can be copied to the server as is."""
    base = adapters[0].base
    modules = " ".join(f'{shlex.quote(a.name + "=")}"$HERE/"{shlex.quote(a.name)}' for a in adapters)
    lines = [
        "#!/bin/sh",
        f"# One vLLM server for the style adapters {', '.join(a.name for a in adapters)} (written by stylelora-tui).",
        "# Extra vLLM options go after the script's name: ./serve.sh --port 8001",
    ]
    if not adapters[0].hub_id:
        lines.append("# The base model is a local folder of the machine that exported: copy it to the server and fix the path.")
    lines += [
        "set -eu",
        'HERE=$(cd "$(dirname "$0")" && pwd)',
        f"exec vllm serve {shlex.quote(base)} \\",
        "  --enable-lora \\",
        f"  --lora-modules {modules} \\",
        f"  --max-lora-rank {max_lora_rank} \\",
        f"  --max-loras {len(adapters)} \\",
        '  "$@"',
    ]
    return "\n".join(lines) + "\n"


def request_example(adapter: VllmAdapter) -> str:
    body = json.dumps({"model": adapter.name, "prompt": EXAMPLE_PROMPT, "max_tokens": 200, "temperature": 0.8})
    return (
        "curl http://localhost:8000/v1/completions \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def readme(adapters: Sequence[VllmAdapter], max_lora_rank: int) -> str:
    base = adapters[0].base
    lines = [
        f"# {len(adapters)} style adapters on one vLLM server",
        "",
        f"Base model: `{base}`" + ("" if adapters[0].hub_id else " (a local folder: copy it to the server and fix the path in serve.sh)") + ".",
        "Adapters: " + ", ".join(f"`{a.name}` (run {a.run_name}, rank {a.rank})" for a in adapters)
        + f"; served with `--max-lora-rank {max_lora_rank} --max-loras {len(adapters)}`.",
        "",
        "On a machine with a GPU and `pip install vllm`, from this folder:",
        "",
        "```bash",
        "./serve.sh",
        "```",
        "",
        "Each request picks its style with `\"model\"`, the adapter's name (OpenAI-compatible API):",
    ]
    for adapter in adapters:
        lines += ["", f"### {adapter.name}", "", "```bash", request_example(adapter), "```"]
        if adapter.data_format == "instruction":
            lines += ["", f"`{adapter.name}` was trained on chat turns: `/v1/chat/completions` with the same "
                          "\"model\" applies the base's chat template, as training did."]
    return "\n".join(lines) + "\n"


def write_vllm_export(runs: Sequence[Run], out_dir: Path, *, force: bool = False) -> VllmExport:
    """Check every run, then write DIR.partial and rename it to ``out_dir`` (never a half folder under its name)."""
    if not runs:
        raise ExportError("name at least one run to export for vLLM")
    adapters = [inspect_adapter(run) for run in runs]
    check_combination(adapters)
    out_dir = Path(out_dir).expanduser().resolve()
    _check_destination(out_dir, adapters, force)
    max_lora_rank = vllm_rank(max(a.rank for a in adapters))
    partial = out_dir.with_name(out_dir.name + ".partial")
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        for adapter in adapters:
            shutil.copytree(adapter.source, partial / adapter.name)
        script = partial / "serve.sh"
        script.write_text(serve_script(adapters, max_lora_rank), encoding="utf-8")
        script.chmod(0o755)
        (partial / "README.md").write_text(readme(adapters, max_lora_rank), encoding="utf-8")
        if out_dir.exists():
            out_dir.rename(old)  # an empty folder, or --force: the old export goes only once the new one is whole
        partial.rename(out_dir)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if old.exists() and not out_dir.exists():
            old.rename(out_dir)
        raise ExportError(f"could not write the vLLM export to {out_dir}: {exc}") from None
    shutil.rmtree(old, ignore_errors=True)
    notes = [] if adapters[0].hub_id else [
        f"the base model {adapters[0].base_model!r} has no Hub id: serve.sh names the local folder "
        f"{adapters[0].local_path}; copy it to the server and fix the path"
    ]
    return VllmExport(out_dir, adapters, max_lora_rank, adapters[0].base, notes)
