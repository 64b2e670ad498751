"""Live estimates for a run config: trainable parameters and peak GPU memory.

Standard library only, no I/O beyond reading a local ``config.json`` (cached),
a few microseconds per call: the config form calls :func:`estimate_for_config`
on every keystroke. The formula, every term's source and the terms we are
least sure of are in docs/estimator.md; the constants below carry the same
names as that document.

Units: bytes everywhere; :func:`format_bytes` prints binary units labelled
"GB"/"MB" (1 GB = 2**30 bytes), the convention of ``torch.cuda`` printouts and
of Unsloth's notebooks, so an estimate reads directly against what they print.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from stylelora_tui.training.cards import CARDS, Card, verdicts
from stylelora_tui.training.methods import method_of, trainable_parameters
from stylelora_tui.training.model_shapes import PROJECTIONS, ModelShape, shape_and_source, shape_for

__all__ = [
    "ModelShape",
    "shape_for",
    "lora_parameters",
    "MemoryEstimate",
    "estimate_memory",
    "Card",
    "CARDS",
    "verdicts",
    "Estimate",
    "estimate_for_config",
    "format_bytes",
    "optimizer_state_bytes",
]

GiB = 1024**3
MiB = 1024**2

# --- Weights ---------------------------------------------------------------
#: NF4 with double quantization: 4 bits per weight, one 8-bit absmax per block
#: of 64 weights, one fp32 second-level absmax per 256 blocks (QLoRA paper, 3.1).
NF4_DQ_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)

# --- Trainable parameters ----------------------------------------------------
#: LoRA A/B (and DoRA magnitudes) are kept in fp32 by both stacks: PEFT's
#: ``autocast_adapter_dtype=True`` and Unsloth's ``float32_mixed_precision``.
ADAPTER_BYTES = 4

# --- Activations, per token and per decoder layer, in elements of the compute
# dtype (see docs/estimator.md, "Activations").
#: Unsloth: fused RMSNorm saves input+output, in-place RoPE, fused LoRA MLP
#: that saves only gate/up outputs and recomputes SwiGLU in backward.
UNSLOTH_ACT = {"h": 6, "kv": 2, "i": 2}
#: transformers + PEFT eager layer with SDPA: fp32 RMSNorm input copies,
#: rotated q/k, attention output, gate/up/SiLU/product of the MLP.
HF_ACT = {"h": 8, "kv": 2, "i": 4}
#: Transient gradients while one layer runs its backward (d of residual,
#: attention and MLP intermediates), elements per token.
BACKWARD_WORK = {"h": 2, "i": 3}
#: Unsloth's offloaded checkpointing keeps the layer inputs in pinned CPU RAM;
#: about two of them are on the GPU at once (the one in use and the prefetch).
OFFLOADED_CHECKPOINTS_ON_GPU = 2

# --- Loss head ------------------------------------------------------------
#: Unsloth (unsloth_zoo.fused_losses.chunked_logprob): rows per chunk =
#: min(2 GiB / (8 B x vocab), max(512, tokens / 8)); 8 bytes per logit.
UNSLOTH_CE_BYTES_PER_LOGIT = 8
UNSLOTH_CE_CHUNK_BYTES = 2 * GiB
UNSLOTH_CE_MIN_ROWS = 512
#: TRL's fused LM head (trl.kernels.chunked_logprob): a [4096 tokens x 32768
#: vocab] tile in the compute dtype, forward and backward.
TRL_TILE_TOKENS = 4096
TRL_TILE_VOCAB = 32768
#: Full logits through transformers' ForCausalLMLoss: bf16 logits + fp32 upcast
#: + saved log_softmax + its gradient (the figure unsloth_zoo's comment gives).
FULL_LOGITS_BYTES_PER_LOGIT = 14

# --- Fixed and empirical overheads ------------------------------------------------
#: CUDA context, cuBLAS/cuDNN handles and loaded kernels: outside torch's
#: "reserved" figure, inside the card's total (least sure; 0.3-0.8 GiB).
CUDA_CONTEXT = int(0.45 * GiB)
#: cuBLAS workspaces, Triton autotune and compiled-kernel scratch, xformers /
#: flash-attention workspaces, pinned staging for offloaded checkpoints.
FRAMEWORK_WORKSPACE = 512 * MiB
#: Caching-allocator overhead: variable-length batches leave cached blocks of
#: the wrong size, so reserved > allocated. Fractions of the static bytes
#: (allocated once), of the stored activations (allocated and freed in LIFO
#: order, which caches well) and of the per-step transients (one layer's
#: recompute and backward, the loss chunks, dequantization buffers).
#: FRAGMENTATION_DYNAMIC is empirical: fitted so Unsloth's published T4 run
#: (6.53 GB reserved) comes out about 9 % under (docs/estimator.md). The least
#: sure term of all; refit it from real runs.
FRAGMENTATION_DYNAMIC = 1.5
FRAGMENTATION_STORED = 0.1
FRAGMENTATION_STATIC = 0.05

_8BIT_OPTIMS = ("8bit",)
_NO_STATE_OPTIMS = ("sgd",)


def lora_parameters(
    shape: ModelShape, r: int, target_modules: Iterable[str], use_dora: bool = False
) -> int:
    """Exact trainable parameters of a LoRA on ``target_modules``.

    Each targeted linear ``in -> out`` gets A (r x in) and B (out x r):
    ``r * (in + out)`` per layer; DoRA adds a magnitude vector of size ``out``.
    Module names that are not one of the seven projections are ignored.
    """
    r = max(int(r), 0)
    shapes = shape.linear_shapes()
    per_layer = 0
    for name in set(target_modules):
        if name in shapes:
            fan_in, fan_out = shapes[name]
            per_layer += r * (fan_in + fan_out) + (fan_out if use_dora else 0)
    return per_layer * shape.num_hidden_layers


def optimizer_state_bytes(optim: str) -> int:
    """Bytes of optimizer state per trainable parameter for a transformers ``optim`` name."""
    o = (optim or "auto").lower()
    if o == "auto":
        return 2  # the lab's default is adamw_8bit (Unsloth notebooks)
    if any(s in o for s in _NO_STATE_OPTIMS):
        return 0
    if "lion" in o:
        return 1 if "8bit" in o else 4
    if "adafactor" in o:
        return 1  # factored second moment, no first moment by default
    if any(s in o for s in _8BIT_OPTIMS):
        return 2  # two 8-bit moments (block-wise stats are < 1 %)
    if "4bit" in o:
        return 1
    return 8  # two fp32 moments: adamw_torch(_fused), adamw_hf, adamw_apex_fused, ...


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak GPU memory of one training run, term by term, in bytes."""

    weights: int
    lora_weights: int
    gradients: int
    optimizer_states: int
    master_weights: int
    activations: int
    logits: int
    workspace: int
    allocator_overhead: int
    cuda_context: int
    #: Pinned host RAM holding offloaded checkpoints (not GPU memory; not in total).
    host_offload: int = 0

    _LABELS = (
        ("weights", "Base weights"),
        ("lora_weights", "Adapter weights"),  # every method's, not only LoRA's
        ("gradients", "Adapter gradients"),
        ("optimizer_states", "Optimizer states"),
        ("master_weights", "fp32 master copy"),
        ("activations", "Activations"),
        ("logits", "Logits / loss"),
        ("workspace", "Kernel workspace"),
        ("allocator_overhead", "Allocator overhead"),
        ("cuda_context", "CUDA context"),
    )

    @property
    def total(self) -> int:
        return (
            self.weights + self.lora_weights + self.gradients + self.optimizer_states
            + self.master_weights + self.activations + self.logits + self.workspace
            + self.allocator_overhead + self.cuda_context
        )

    @property
    def reserved(self) -> int:
        """What ``torch.cuda.max_memory_reserved()`` should report: total minus the CUDA context."""
        return self.total - self.cuda_context

    def breakdown(self) -> list[tuple[str, int]]:
        """``[(label, bytes), ...]`` for every GPU term, summing to :attr:`total`."""
        return [(label, getattr(self, name)) for name, label in self._LABELS]


def _act_bytes(coef: dict, shape: ModelShape, c: int) -> int:
    """Bytes per token for per-token coefficient dict over h / kv / i."""
    return c * (
        coef.get("h", 0) * shape.hidden_size
        + coef.get("kv", 0) * shape.kv_dim
        + coef.get("i", 0) * shape.intermediate_size
    )


def _loss_bytes(shape: ModelShape, tokens: int, c: int, backend: str, chunked: bool) -> int:
    v, h = shape.vocab_size, shape.hidden_size
    if not chunked:
        return FULL_LOGITS_BYTES_PER_LOGIT * tokens * v
    # Both stacks hand back an fp32 gradient for the final hidden states.
    hidden_grad = 4 * tokens * h
    if backend == "unsloth":
        rows_budget = max(UNSLOTH_CE_CHUNK_BYTES // (UNSLOTH_CE_BYTES_PER_LOGIT * v), 2)
        rows = min(rows_budget, max(UNSLOTH_CE_MIN_ROWS, -(-tokens // 8)), tokens)
        return UNSLOTH_CE_BYTES_PER_LOGIT * rows * v + hidden_grad
    tile = min(tokens, TRL_TILE_TOKENS) * min(v, TRL_TILE_VOCAB) * c
    return 2 * tile + hidden_grad


def estimate_memory(
    shape: ModelShape,
    *,
    load_in_4bit: bool,
    r: int,
    target_modules: Iterable[str],
    batch_size: int,
    seq_len: int,
    gradient_checkpointing: bool = True,
    optim: str = "auto",
    use_dora: bool = False,
    compute_dtype_bytes: int = 2,
    backend: str = "unsloth",
    lora_dropout: float = 0.0,
    chunked_loss: bool = True,
) -> MemoryEstimate:
    """Estimate peak GPU memory for LoRA/QLoRA training of ``shape``.

    ``seq_len`` is the padded length of the longest batch: ``max_seq_length``
    is the worst case (and the exact case with packing). ``backend`` is
    ``"unsloth"`` (also for ``"auto"``) or ``"peft"`` (plain transformers +
    PEFT + TRL). ``chunked_loss=False`` models a stack that materializes the
    full ``batch x seq x vocab`` logits and upcasts them to fp32.
    """
    c = max(int(compute_dtype_bytes), 1)
    unsloth = backend != "peft"
    targets = [m for m in set(target_modules) if m in PROJECTIONS]
    tokens = max(int(batch_size), 1) * max(int(seq_len), 1)
    layers = shape.num_hidden_layers
    h = shape.hidden_size
    linears = shape.linear_shapes()

    # Weights: decoder linears at 4 bit (NF4 + double quant) or 16 bit;
    # embeddings, lm_head, norms and biases always in the compute dtype.
    dense = shape.embedding_parameters() + shape.small_parameters()
    if load_in_4bit:
        weights = int(shape.linear_parameters() * NF4_DQ_BYTES_PER_PARAM) + dense * c
    else:
        weights = (shape.linear_parameters() + dense) * c

    trainable = lora_parameters(shape, r, targets, use_dora)
    lora_weights = trainable * ADAPTER_BYTES
    gradients = trainable * ADAPTER_BYTES
    optimizer_states = trainable * optimizer_state_bytes(optim)
    # A 16-bit adapter under mixed precision would need an fp32 master copy;
    # both stacks keep adapters in fp32, so there is none.
    master_weights = trainable * 4 if ADAPTER_BYTES < 4 else 0

    # Activations of one decoder layer for the whole micro-batch.
    per_token = _act_bytes(UNSLOTH_ACT if unsloth else HF_ACT, shape, c)
    if lora_dropout and lora_dropout > 0:
        # PEFT applies dropout per module: a copy of the input plus its mask.
        per_token += sum(linears[m][0] for m in targets) * (c + 1)
    if use_dora:
        # PEFT's DoRA keeps each targeted module's base output for backward.
        per_token += sum(linears[m][1] for m in targets) * c
    per_token += 2 * len(targets) * max(int(r), 0) * c  # x @ A, saved for B's grad
    layer_acts = per_token * tokens
    backward_work = _act_bytes(BACKWARD_WORK, shape, c) * tokens
    hidden_state = tokens * h * c
    host_offload = 0
    if not gradient_checkpointing:
        stored = layers * layer_acts  # every layer's activations, freed in LIFO order
        working = backward_work
    elif unsloth:
        stored = OFFLOADED_CHECKPOINTS_ON_GPU * hidden_state
        host_offload = layers * hidden_state
        working = layer_acts + backward_work  # the layer being recomputed
    else:
        stored = layers * hidden_state  # one checkpointed input per layer
        working = layer_acts + backward_work
    # Embedding output, final norm input/output.
    working += 3 * hidden_state
    activations = stored + working

    logits = _loss_bytes(shape, tokens, c, "unsloth" if unsloth else "peft", chunked_loss)

    # Dequantization buffers (the largest linear in the compute dtype, forward
    # and backward) and fixed framework scratch.
    largest = max(a * b for a, b in linears.values())
    dequant = 2 * largest * c if load_in_4bit else 0
    workspace = FRAMEWORK_WORKSPACE + dequant

    static = weights + lora_weights + gradients + optimizer_states + master_weights
    transient = working + logits + dequant
    allocator_overhead = int(
        FRAGMENTATION_STATIC * static + FRAGMENTATION_STORED * stored + FRAGMENTATION_DYNAMIC * transient
    )

    return MemoryEstimate(
        weights=int(weights),
        lora_weights=int(lora_weights),
        gradients=int(gradients),
        optimizer_states=int(optimizer_states),
        master_weights=int(master_weights),
        activations=int(activations),
        logits=int(logits),
        workspace=int(workspace),
        allocator_overhead=allocator_overhead,
        cuda_context=CUDA_CONTEXT,
        host_offload=int(host_offload),
    )


# --- The whole config ----------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    shape: ModelShape
    shape_source: str | None
    trainable_parameters: int
    total_parameters: int
    memory: MemoryEstimate
    verdicts: list

    @property
    def trainable_share(self) -> float:
        """Trainable parameters as a percentage of the base model's parameters."""
        return 100.0 * self.trainable_parameters / max(self.total_parameters, 1)


def _section(config: dict, key: str) -> dict:
    value = config.get(key) if isinstance(config, dict) else None
    return value if isinstance(value, dict) else {}


def _int(value, default: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return default
    return n if n > 0 else default


def _compute_bytes(train: dict) -> int:
    bf16, fp16 = train.get("bf16", "auto"), train.get("fp16", False)
    if bf16 is True or fp16 is True or bf16 in (None, "auto", "true", "True"):
        return 2
    return 4


def estimate_for_config(config: dict, search_dirs: Iterable[Path] = ()) -> Estimate | None:
    """Estimate a run config (``model``/``lora``/``train`` sections); ``None`` when the model's shape is unknown."""
    model, lora, train = _section(config, "model"), _section(config, "lora"), _section(config, "train")
    name = model.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    shape, source = shape_and_source(name, tuple(search_dirs))
    if shape is None:
        return None
    targets = lora.get("target_modules")
    if isinstance(targets, str):  # PEFT also takes "all-linear" or one name
        targets = list(PROJECTIONS) if targets == "all-linear" else [targets]
    elif not isinstance(targets, (list, tuple)):
        targets = list(PROJECTIONS)
    r = _int(lora.get("r"), 16)
    use_dora = bool(lora.get("use_dora", False))
    try:
        dropout = float(lora.get("lora_dropout") or 0.0)
    except (TypeError, ValueError):
        dropout = 0.0
    backend = str(model.get("backend") or "auto").lower()
    method = method_of(lora)
    is_lora = method in ("lora", "loraplus")
    virtual = _int(lora.get("num_virtual_tokens"), 20) if method == "prompt_tuning" else 0  # longer sequences
    memory = estimate_memory(
        shape,
        load_in_4bit=bool(model.get("load_in_4bit", True)),
        r=r if is_lora else 0,
        target_modules=targets if is_lora else (),
        batch_size=_int(train.get("per_device_train_batch_size"), 1),
        seq_len=_int(model.get("max_seq_length"), 2048) + virtual,
        gradient_checkpointing=train.get("gradient_checkpointing", True) is not False,
        optim=str(train.get("optim") or "auto"),
        use_dora=use_dora and is_lora,
        compute_dtype_bytes=_compute_bytes(train),
        backend="peft" if backend == "peft" or not is_lora else "unsloth",
        lora_dropout=dropout if is_lora else 0.0,
    )
    if not is_lora:  # ia3, prompt and prefix tuning: their own fp32 weights, gradients and optimizer states
        n = trainable_parameters(shape, lora) or 0
        memory = replace(memory, lora_weights=n * ADAPTER_BYTES, gradients=n * ADAPTER_BYTES,
                         optimizer_states=n * optimizer_state_bytes(str(train.get("optim") or "auto")))
    return Estimate(
        shape=shape,
        shape_source=source,
        trainable_parameters=memory.lora_weights // ADAPTER_BYTES,
        total_parameters=shape.total_parameters(),
        memory=memory,
        verdicts=verdicts(memory),
    )


def format_bytes(n: int | float) -> str:
    """``6.5 GB`` style, binary units (1 GB = 2**30 bytes, as torch and Unsloth print)."""
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, size in (("GB", GiB), ("MB", MiB), ("KB", 1024)):
        if n >= size:
            value = n / size
            return f"{sign}{value:.1f} {unit}" if value < 100 else f"{sign}{value:.0f} {unit}"
    return f"{sign}{int(n)} B"
