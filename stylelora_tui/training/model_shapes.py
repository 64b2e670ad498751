"""Model shapes: the few ``config.json`` numbers the estimator needs.

Standard library only; this module is imported by the UI process and runs on
every keystroke of the config form. A shape comes from a local ``config.json``
(a model folder, a folder found under a search directory, or a Hugging Face
cache snapshot) or from a built-in table of common models.

Every value in ``BUILTIN_SHAPES`` is the published ``config.json`` value of
that model's Hub repository (see docs/estimator.md for the cross-checks).
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from stylelora_tui.config.schema import ALL_PROJECTIONS

__all__ = [
    "ModelShape",
    "BUILTIN_SHAPES",
    "PROJECTIONS",
    "shape_for",
    "shape_from_config",
    "find_config",
]

#: The seven projections of a Llama-style decoder layer, in PEFT's names.
# The projections a Llama-style decoder layer has: the config's choices for lora.target_modules.
PROJECTIONS = tuple(ALL_PROJECTIONS)


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a Llama-style decoder-only model (Llama, Mistral, Qwen2, SmolLM2)."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool
    head_dim: int | None = None
    max_position_embeddings: int | None = None
    #: Qwen2 has biases on q/k/v (``attention_bias`` in Llama configs).
    attention_bias: bool = False

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.dim_per_head

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.dim_per_head

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """``{module: (in_features, out_features)}`` for one decoder layer."""
        return dict(_linear_shapes(self))

    def _linear_shapes_uncached(self) -> dict[str, tuple[int, int]]:
        h, i = self.hidden_size, self.intermediate_size
        return {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def linear_parameters(self) -> int:
        """Weights of all decoder-layer linears (what bitsandbytes quantizes)."""
        return _linear_parameters(self)

    def embedding_parameters(self) -> int:
        """Input embedding plus an untied ``lm_head`` (both stay 16-bit under 4-bit loading)."""
        emb = self.vocab_size * self.hidden_size
        return emb if self.tie_word_embeddings else 2 * emb

    def small_parameters(self) -> int:
        """RMSNorm weights and attention biases (kept 16-bit, or fp32 by some stacks)."""
        norms = (2 * self.num_hidden_layers + 1) * self.hidden_size
        bias = (self.q_dim + 2 * self.kv_dim) * self.num_hidden_layers if self.attention_bias else 0
        return norms + bias

    def total_parameters(self) -> int:
        """Parameter count as ``sum(p.numel() for p in model.parameters())`` reports it (tied weights once)."""
        return self.linear_parameters() + self.embedding_parameters() + self.small_parameters()


@functools.lru_cache(maxsize=64)
def _linear_shapes(shape: ModelShape) -> dict[str, tuple[int, int]]:
    return shape._linear_shapes_uncached()


@functools.lru_cache(maxsize=64)
def _linear_parameters(shape: ModelShape) -> int:
    return sum(a * b for a, b in _linear_shapes(shape).values()) * shape.num_hidden_layers


def _shape(name, h, i, layers, heads, kv, vocab, tied, head_dim=None, max_pos=None, bias=False):
    return ModelShape(name, h, i, layers, heads, kv, vocab, tied, head_dim, max_pos, bias)


#: Published config.json values (hidden, intermediate, layers, heads, kv heads, vocab, tied).
BUILTIN_SHAPES: dict[str, ModelShape] = {
    s.name.lower(): s
    for s in (
        _shape("Llama-3.2-1B", 2048, 8192, 16, 32, 8, 128256, True, 64, 131072),
        _shape("Llama-3.2-3B", 3072, 8192, 28, 24, 8, 128256, True, 128, 131072),
        _shape("Llama-3.1-8B", 4096, 14336, 32, 32, 8, 128256, False, 128, 131072),
        _shape("SmolLM2-135M", 576, 1536, 30, 9, 3, 49152, True, 64, 8192),
        _shape("SmolLM2-360M", 960, 2560, 32, 15, 5, 49152, True, 64, 8192),
        _shape("SmolLM2-1.7B", 2048, 8192, 24, 32, 32, 49152, True, 64, 8192),
        _shape("Qwen2.5-0.5B", 896, 4864, 24, 14, 2, 151936, True, 64, 32768, True),
        _shape("Qwen2.5-1.5B", 1536, 8960, 28, 12, 2, 151936, True, 128, 32768, True),
        _shape("Qwen2.5-3B", 2048, 11008, 36, 16, 2, 151936, True, 128, 32768, True),
        _shape("Qwen2.5-7B", 3584, 18944, 28, 28, 4, 152064, False, 128, 131072, True),
        _shape("Mistral-7B-v0.3", 4096, 14336, 32, 32, 8, 32768, False, 128, 32768),
    )
}

#: Names that are not a model id but mean one.
ALIASES = {"demo": "smollm2-135m"}

# Words that name a variant of the same weights, not another shape.
_VARIANT_WORDS = re.compile(
    r"-(instruct|it|chat|base|hf|unsloth|bnb|4bit|8bit|16bit|gguf|awq|gptq|dynamic|"
    r"q\d(-[a-z0-9]+)*|f16|bf16|fp16)(?=-|$)"
)


def _normalise(name: str) -> str:
    s = name.strip().lower().replace("\\", "/")
    s = s.rsplit("/", 1)[-1]  # unsloth/Llama-3.2-3B -> llama-3.2-3b
    s = re.sub(r"\.gguf$", "", s)
    s = re.sub(r"[\s_:.]+(?=[a-z])", "-", s)  # SmolLM2-135M-Instruct.Q4_1 -> ...-q4-1
    s = re.sub(r"[\s_:]+", "-", s)
    s = re.sub(r"^meta-llama-", "llama-", s)  # Meta-Llama-3.1-8B
    s = re.sub(r"^llama(\d)", r"llama-\1", s)  # llama3.2-3b (Ollama style)
    prev = None
    while prev != s:
        prev, s = s, _VARIANT_WORDS.sub("", s)
    return s


# Longest keys first so "qwen2.5-1.5b" wins over a shorter key that is its prefix.
_KEY_PATTERNS = [
    (re.compile(r"(?<![a-z0-9.])" + re.escape(k) + r"(?![a-z0-9])"), k)
    for k in sorted(BUILTIN_SHAPES, key=len, reverse=True)
]


@functools.lru_cache(maxsize=256)
def builtin_shape(model_name: str) -> ModelShape | None:
    """Match a Hub id, folder or file name against the built-in table."""
    if not model_name:
        return None
    norm = _normalise(model_name)
    if norm in ALIASES:
        return BUILTIN_SHAPES[ALIASES[norm]]
    for pattern, key in _KEY_PATTERNS:
        if pattern.search(norm):
            return BUILTIN_SHAPES[key]
    return None


def shape_from_config(cfg: dict, name: str = "") -> ModelShape | None:
    """Build a shape from a parsed ``config.json`` (``text_config`` of multimodal models included)."""
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg, **cfg["text_config"]}
    try:
        heads = int(cfg["num_attention_heads"])
        return ModelShape(
            name=name or str(cfg.get("_name_or_path") or cfg.get("model_type") or "model"),
            hidden_size=int(cfg["hidden_size"]),
            intermediate_size=int(cfg["intermediate_size"]),
            num_hidden_layers=int(cfg["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(cfg.get("num_key_value_heads") or heads),
            vocab_size=int(cfg["vocab_size"]),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            head_dim=int(cfg["head_dim"]) if cfg.get("head_dim") else None,
            max_position_embeddings=(
                int(cfg["max_position_embeddings"]) if cfg.get("max_position_embeddings") else None
            ),
            attention_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


_CONFIG_CACHE: dict[str, tuple[int, ModelShape | None]] = {}


def _read_config(path: Path) -> ModelShape | None:
    """Parse ``path`` once per modification time (the form calls this on every keystroke)."""
    key = str(path)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    hit = _CONFIG_CACHE.get(key)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        shape = shape_from_config(cfg, name=path.parent.name) if isinstance(cfg, dict) else None
    except (OSError, ValueError, UnicodeDecodeError):
        shape = None
    _CONFIG_CACHE[key] = (mtime, shape)
    return shape


def _hub_cache_dirs() -> list[Path]:
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return [Path(env["HF_HUB_CACHE"])]
    if env.get("HF_HOME"):
        return [Path(env["HF_HOME"]) / "hub"]
    return [Path.home() / ".cache" / "huggingface" / "hub"]


def find_config(model_name: str, search_dirs: Iterable[Path] = ()) -> Path | None:
    """Find a local ``config.json`` for ``model_name``.

    Looks at the name itself (a folder, or a file inside one), then
    ``DIR/NAME`` and ``DIR/<last part of NAME>`` for each search dir, then the
    Hugging Face cache layout ``DIR/models--ORG--NAME/snapshots/*/config.json``
    under the search dirs and the user's hub cache.
    """
    if not model_name or model_name.strip().lower() == "demo":
        return None
    raw = Path(model_name).expanduser()
    candidates = [raw] if raw.suffix.lower() != ".gguf" else [raw.parent]
    tail = model_name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    dirs = [Path(d) for d in search_dirs]
    for d in dirs:
        candidates += [d / model_name, d / tail]
    for c in candidates:
        cfg = c / "config.json"
        if cfg.is_file():
            return cfg
    if "/" in model_name and not raw.is_absolute():
        repo = "models--" + model_name.strip("/").replace("/", "--")
        for d in dirs + _hub_cache_dirs():
            snaps = d / repo / "snapshots"
            if snaps.is_dir():
                for snap in sorted(snaps.iterdir(), reverse=True):
                    if (snap / "config.json").is_file():
                        return snap / "config.json"
    return None


def shape_for(model_name: str, search_dirs: Iterable[Path] = ()) -> ModelShape | None:
    """The shape of ``model_name``, from a local ``config.json`` if there is one, else the built-in table."""
    return shape_and_source(model_name, search_dirs)[0]


#: How long a look-up of local files is trusted (the form asks on every keystroke).
LOOKUP_TTL_S = 1.0
_LOOKUP_CACHE: dict[tuple, tuple[float, Path | None]] = {}


def _cached_find_config(model_name: str, search_dirs: tuple) -> Path | None:
    key = (model_name, search_dirs)
    now = time.monotonic()
    hit = _LOOKUP_CACHE.get(key)
    if hit is not None and now - hit[0] < LOOKUP_TTL_S:
        return hit[1]
    found = find_config(model_name, search_dirs)
    if len(_LOOKUP_CACHE) > 256:
        _LOOKUP_CACHE.clear()
    _LOOKUP_CACHE[key] = (now, found)
    return found


def shape_and_source(model_name: str, search_dirs: Iterable[Path] = ()) -> tuple[ModelShape | None, str | None]:
    """Like :func:`shape_for`, also saying where the shape came from.

    Local look-ups are cached for ``LOOKUP_TTL_S``; a found ``config.json`` is
    re-read whenever its modification time changes.
    """
    if not isinstance(model_name, str):
        return None, None
    cfg = _cached_find_config(model_name, tuple(str(d) for d in search_dirs))
    if cfg is not None:
        shape = _read_config(cfg)
        if shape is not None:
            return shape, f"config.json at {cfg}"
    shape = builtin_shape(model_name)
    if shape is not None:
        return shape, f"built-in table: {shape.name}"
    return None, None
