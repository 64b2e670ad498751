"""GGUF for llama.cpp and Ollama: ``export RUN --gguf [--quant f16|q8_0|bf16|f32]``.

Writes, into ``RUN/gguf`` (or ``-o DIR``):

- ``RUN-merged-QUANT.gguf``: the adapter merged into the base (``export.merge``'s
  ``merge_and_unload``), then converted by llama.cpp's ``convert_hf_to_gguf.py``;
- ``BASE-QUANT.gguf`` and ``RUN-lora-TYPE.gguf``: the base model and the adapter
  as a GGUF LoRA (``convert_lora_to_gguf.py``), to load together;
- ``Modelfile`` (``FROM`` the base, ``ADAPTER`` the adapter) and
  ``Modelfile.merged`` for ``ollama create``, with the prompt layout and stop
  token the adapter was trained with, and a ``README.md`` with the commands.

llama.cpp scales a LoRA by ``alpha / rank``; PEFT's rsLoRA by ``alpha / sqrt(rank)``
(and ``rank_pattern`` / ``alpha_pattern`` per module): that scale is baked into
the B matrices of the copy that is converted. A tokenizer rebuilt by
transformers from a GGUF file (the demo's) carries a SentencePiece-style
decoder that would make the converter write the wrong vocabulary type; the
copy that is converted gets the plain byte-level decoder, checked to encode
and decode the same. Everything is written in ``DIR.partial`` and renamed when
whole, so no half-written export is ever found under its name.

Heavy imports (torch, safetensors, transformers) are inside functions; the
converters run in a subprocess (``stylelora_tui.gguf_converters``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stylelora_tui import gguf_converters
from stylelora_tui.export import ExportError, sixteen_bit_base
from stylelora_tui.runs.run import Run

#: What ``--quant`` offers: the types llama.cpp's Python converter writes itself (k-quants need llama-quantize).
QUANTS = ("f16", "q8_0", "bf16", "f32")
#: The merge's precision before conversion: never coarser than the GGUF it becomes.
MERGE_DTYPE = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "q8_0": "float32"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json")
PROMPT_SLOT = "\x00PROMPT\x00"  # stands for the user's words while the prompt layout is rendered
ROUND_TRIP_TEXT = "You wind the lamp at dusk, 3 ships; 33 gulls... “naïve” café — 🚀\n\tend"


@dataclass
class GgufExport:
    path: Path
    merged: Path
    base: Path
    adapter: Path
    modelfile: Path
    quant: str
    merge_check: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def adapter_type(quant: str) -> str:
    """The adapter's own precision: a LoRA's small B matrices lose too much in q8_0, so it stays 16-bit."""
    return quant if quant in ("f32", "bf16") else "f16"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def method_problems(config: dict[str, Any]) -> list[str]:
    """Why llama.cpp cannot take this adapter as a GGUF LoRA (empty: it can)."""
    from stylelora_tui.export import lora_runtime_problems

    return lora_runtime_problems(config, "llama.cpp", "prompt tuning and IA3 have no GGUF form")


def check_run(run: Run) -> dict[str, Any]:
    """The run's final adapter config, or ExportError saying why it cannot become GGUF."""
    config_path = run.adapter_dir / "adapter_config.json"
    if not config_path.exists():
        raise ExportError(f"run {run.name} has no final adapter in {run.adapter_dir} (state: {run.state}); train it to the end first")
    config = _read_json(config_path)
    if not config:
        raise ExportError(f"run {run.name}: unreadable adapter config {config_path}")
    problems = method_problems(config)
    if problems:
        raise ExportError(f"run {run.name} cannot be exported to GGUF: " + "; ".join(problems))
    return config


# --------------------------------------------------------------------------- the adapter's scale


def _pattern_value(patterns: dict[str, Any], module: str, default: float) -> float:
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches the end of the module's name."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return float(value)
    return default


def lora_b_factor(config: dict[str, Any], module: str, rank: int) -> float:
    """How much B must be scaled so llama.cpp's ``alpha / rank`` (alpha: the file's lora_alpha) gives PEFT's scale."""
    alpha = _pattern_value(config.get("alpha_pattern") or {}, module, float(config["lora_alpha"]))
    peft_scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return peft_scale / (float(config["lora_alpha"]) / rank)


def scaled_adapter(adapter_dir: Path, into: Path) -> list[str]:
    """A copy of the adapter for the converter, with PEFT's per-module scale baked into B; notes on what changed."""
    import torch
    from safetensors.torch import load_file, save_file

    config = _read_json(adapter_dir / "adapter_config.json")
    into.mkdir(parents=True)
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    changed = 0
    for name, tensor in tensors.items():
        if ".lora_B." not in name:
            continue
        module = name.split(".lora_B.")[0].removeprefix("base_model.model.")
        factor = lora_b_factor(config, module, int(tensor.shape[1]))
        if abs(factor - 1.0) > 1e-12:
            tensors[name] = (tensor.to(torch.float32) * factor).to(tensor.dtype).contiguous()
            changed += 1
    save_file(tensors, str(into / "adapter_model.safetensors"), metadata={"format": "pt"})
    notes = []
    if changed:
        what = "rsLoRA's alpha/sqrt(r)" if config.get("use_rslora") else "the per-module alpha/rank"
        notes.append(f"{what} baked into the B matrices of {changed} modules (llama.cpp scales by lora_alpha/r)")
    config.update(use_rslora=False, alpha_pattern={})
    (into / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return notes


# --------------------------------------------------------------------------- the tokenizer


def byte_level_decoder(tokenizer_json: dict[str, Any]) -> dict[str, Any] | None:
    """tokenizer.json with the plain byte-level decoder, when a GGUF rebuild gave it a SentencePiece-style one.

    transformers rebuilds a GGUF ``gpt2`` vocabulary as BPE with
    ``byte_fallback`` and a ByteFallback/Fuse/Replace(▁)/ByteLevel decoder; the
    converter takes that for a Llama SentencePiece vocabulary. With byte-level
    pre-tokenisation every byte is in the vocabulary, so byte fallback never
    fires and ByteLevel alone decodes the same. None when nothing needs changing.
    """
    model = tokenizer_json.get("model") or {}
    pre = tokenizer_json.get("pre_tokenizer") or {}
    decoder = tokenizer_json.get("decoder") or {}
    byte_level_pre = pre.get("type") == "ByteLevel" or any(
        p.get("type") == "ByteLevel" for p in pre.get("pretokenizers") or [])
    if model.get("type") != "BPE" or not byte_level_pre:
        return None
    if not model.get("byte_fallback") and decoder.get("type") == "ByteLevel":
        return None
    fixed = json.loads(json.dumps(tokenizer_json))
    fixed["model"]["byte_fallback"] = False
    fixed["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return fixed


def fix_tokenizer(folder: Path) -> bool:
    """Give ``folder``'s tokenizer.json the byte-level decoder if needed, proven to encode and decode alike."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    original = _read_json(path)
    fixed = byte_level_decoder(original)
    if fixed is None:
        return False
    before, after = Tokenizer.from_str(json.dumps(original)), Tokenizer.from_str(json.dumps(fixed))
    ids = before.encode(ROUND_TRIP_TEXT, add_special_tokens=False).ids
    if after.encode(ROUND_TRIP_TEXT, add_special_tokens=False).ids != ids or after.decode(ids) != before.decode(ids):
        raise ExportError(f"{path}: the byte-level decoder does not reproduce this tokenizer; cannot convert it to GGUF")
    path.write_text(json.dumps(fixed, ensure_ascii=False), encoding="utf-8")
    return True


def base_view(base_path: str, tokenizer_from: Path, into: Path) -> Path:
    """A folder the converter reads as the base: links to its config and weights, and the run's tokenizer."""
    source = Path(base_path).expanduser()
    if not source.is_dir():
        from huggingface_hub import snapshot_download

        try:
            source = Path(snapshot_download(base_path, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached: say what to do
            raise ExportError(f"the base model {base_path} is not a local folder nor in the Hugging Face cache; "
                              "load it once (for instance with `stylelora-tui compare`) and export again") from None
    into.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file() and item.name not in TOKENIZER_FILES:
            os.symlink(item.resolve(), into / item.name)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copy2(tokenizer_from / name, into / name)
    return into


# --------------------------------------------------------------------------- running the converters


def convert(script: str, args: list[str], log: Callable[[str], None]) -> None:
    """One converter in a subprocess; ExportError with its last lines when it fails."""
    done = subprocess.run(gguf_converters.command(script, *args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, encoding="utf-8", errors="replace")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("pre-tokenizer:", "converter error:")):
            log(line)
    if done.returncode != 0:
        tail = [line for line in lines if not line.startswith(("INFO:", "Writing:", "DEBUG:"))][-4:]
        raise ExportError(f"{script} failed (exit {done.returncode}): " + " | ".join(tail or lines[-4:]))


# --------------------------------------------------------------------------- Ollama


def _go_template_text(text: str) -> str:
    """Literal text inside a Go template (Ollama's TEMPLATE): ``{{`` is written as a template expression."""
    return text.replace("{{", '{{ "{{" }}')


def ollama_template(tokenizer: Any, instruction: str, data_format: str) -> str:
    """The prompt layout of training (``render_prompt``), with Ollama's ``{{ .Prompt }}`` for the user's words.

    llama.cpp and Ollama add BOS themselves where the tokenizer does, so a BOS
    that ``render_prompt`` writes as text is left out.
    """
    from stylelora_tui.prompting import bos_prefix, render_prompt

    rendered = render_prompt(tokenizer, {"instruction": instruction, "input": PROMPT_SLOT}, data_format)
    bos = bos_prefix(tokenizer)
    if bos and rendered.startswith(bos):
        rendered = rendered[len(bos):]
    before, _, after = rendered.partition(PROMPT_SLOT)
    return _go_template_text(before) + "{{ .Prompt }}" + _go_template_text(after)


def modelfile(model: str, template: str, stop: list[str], adapter: str | None = None) -> str:
    if '"""' in template:
        raise ExportError('the chat template contains """, which an Ollama Modelfile cannot quote')
    lines = [f"FROM ./{model}"] + ([f"ADAPTER ./{adapter}"] if adapter else [])
    lines.append(f'TEMPLATE """{template}"""')
    lines += [f"PARAMETER stop {json.dumps(token)}" for token in stop]
    return "\n".join(lines) + "\n"


def readme(run: Run, result: GgufExport, data_format: str, instruction: str) -> str:
    merged, base, adapter = result.merged.name, result.base.name, result.adapter.name
    how = (f'Prompts are the chat turn the adapter was trained on: "{instruction}", a blank line, then your opening words '
           "(the Modelfile's TEMPLATE adds the instruction: type only the opening words)."
           if data_format == "instruction" else
           "Prompts are plain text: the opening words of a passage, continued in the author's style.")
    return "\n".join([
        f"# {run.name}: GGUF ({result.quant}) for llama.cpp and Ollama", "",
        f"- `{merged}`: the adapter merged into the base model.",
        f"- `{base}` + `{adapter}`: the base model and the LoRA adapter, loaded together.",
        "- `Modelfile` (base + adapter) and `Modelfile.merged`, for Ollama.", "", how, "",
        "```bash",
        f"llama-cli -m {base} --lora {adapter} -p 'The harbour was quiet'",
        f"llama-cli -m {merged} -p 'The harbour was quiet'",
        f"ollama create {run.name.lower()} -f Modelfile && ollama run {run.name.lower()} 'The harbour was quiet'",
        "```", "",
    ])


# --------------------------------------------------------------------------- the export


def _check_destination(out_dir: Path, run: Run) -> None:
    """OUT is replaced when the export is whole: only an earlier GGUF export (it has a Modelfile) or an empty folder."""
    run_path = run.path.resolve()
    if out_dir == run_path or out_dir in run_path.parents:
        raise ExportError(f"{out_dir} holds run {run.name}; choose a folder for the GGUF files (default: RUN/gguf)")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "Modelfile").is_file():
        raise ExportError(f"{out_dir} holds other files; choose an empty folder (an earlier GGUF export there is replaced)")


def write_gguf_export(run: Run, out_dir: Path | None = None, *, quant: str = "f16",
                      log: Callable[[str], None] = lambda message: None) -> GgufExport:
    """Merged GGUF, base GGUF + GGUF LoRA, Modelfiles: written in OUT.partial, renamed to OUT when whole."""
    if quant not in QUANTS:
        raise ExportError(f"quant {quant!r}: choose one of {', '.join(QUANTS)} (k-quants need llama.cpp's llama-quantize)")
    check_run(run)
    try:
        gguf_converters.find_converters()
    except gguf_converters.ConvertersMissing as exc:
        raise ExportError(str(exc)) from None
    from stylelora_tui import export
    from stylelora_tui.generation.protocol import GenerationError
    from stylelora_tui.generation.run_adapters import resolve_run

    try:
        resolved = resolve_run(run.path)
    except GenerationError as exc:
        raise ExportError(str(exc)) from None
    out_dir = Path(out_dir or run.path / "gguf").expanduser().resolve()
    _check_destination(out_dir, run)
    partial = out_dir.with_name(out_dir.name + ".partial")
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    base_name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(sixteen_bit_base(resolved.base_path)).name) or "base"
    files = (partial / f"{run.name}-merged-{quant}.gguf", partial / f"{base_name}-{quant}.gguf",
             partial / f"{run.name}-lora-{adapter_type(quant)}.gguf")
    work = partial / ".work"
    from safetensors import SafetensorError  # how safetensors reports a failed write (a full disk)

    try:
        partial.mkdir(parents=True)
        check = export.merge(run, work / "merged", dtype=MERGE_DTYPE[quant], log=log)
        merged_hf = work / "merged"
        notes = ["tokenizer: plain byte-level decoder written for llama.cpp (same tokens)"] if fix_tokenizer(merged_hf) else []
        log(f"converting the merged model to {files[0].name}")
        convert("convert_hf_to_gguf.py", [str(merged_hf), "--outfile", str(files[0]), "--outtype", quant], log)
        view = base_view(sixteen_bit_base(resolved.base_path), merged_hf, work / "base")
        log(f"converting the base model to {files[1].name}")
        convert("convert_hf_to_gguf.py", [str(view), "--outfile", str(files[1]), "--outtype", quant], log)
        notes += scaled_adapter(run.adapter_dir, work / "adapter")
        log(f"converting the adapter to {files[2].name}")
        convert("convert_lora_to_gguf.py", [str(work / "adapter"), "--base", str(view), "--outfile", str(files[2]),
                                            "--outtype", adapter_type(quant)], log)
        result = GgufExport(out_dir, *(out_dir / f.name for f in files), out_dir / "Modelfile", quant, check, notes)
        _write_ollama_files(run, resolved.cfg, merged_hf, result, partial)
        shutil.rmtree(work)
        if out_dir.exists():
            out_dir.rename(old)  # the previous export goes only once the new one is whole
        partial.rename(out_dir)
    except (OSError, SafetensorError, ExportError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if old.exists() and not out_dir.exists():
            old.rename(out_dir)
        if isinstance(exc, ExportError):
            raise
        why = getattr(exc, "strerror", None) or str(exc).removeprefix("Error while serializing: ")
        raise ExportError(f"could not write the GGUF export ({why}: {getattr(exc, 'filename', None) or partial}); "
                          f"{out_dir} is as it was") from None
    shutil.rmtree(old, ignore_errors=True)
    return result


def _write_ollama_files(run: Run, cfg: dict[str, Any], tokenizer_dir: Path, result: GgufExport, into: Path) -> None:
    from transformers import AutoTokenizer

    from stylelora_tui.prompting import DEFAULT_INSTRUCTION, read_jsonl, record_format

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    data_format = record_format(cfg)
    records = []
    for split in ("eval.jsonl", "train.jsonl"):
        path = Path(cfg["data"]["corpus"]) / split
        if not records and path.exists():
            records = read_jsonl(path)[:1]
    instruction = str((records[0] if records else {}).get("instruction") or DEFAULT_INSTRUCTION).strip()
    template = ollama_template(tokenizer, instruction, data_format)
    stop = [tokenizer.eos_token] if tokenizer.eos_token else []
    (into / "Modelfile").write_text(modelfile(result.base.name, template, stop, result.adapter.name), encoding="utf-8")
    (into / "Modelfile.merged").write_text(modelfile(result.merged.name, template, stop), encoding="utf-8")
    (into / "README.md").write_text(readme(run, result, data_format, instruction), encoding="utf-8")
