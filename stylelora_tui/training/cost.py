"""Time and cost of a run per GPU type, before it starts.

Standard library only (the config form calls it on every change, in a
worker). The throughput model, every factor's source and the model's error
against measured runs are in docs/cost.md:

    FLOPs per token  = forward + backward (+ a forward of the decoder layers when
                       gradient checkpointing recomputes them), from the model's shape
    seconds per step = tokens per step x FLOPs per token x method overhead
                       / (peak FLOP/s x utilization)

The GPU table (memory, peak, bf16, price, utilization) is package data,
``stylelora_tui/data/gpus.toml``; the user overrides prices in the app's
``settings.toml``, table ``[gpu_prices]``. Whether a run fits a card reuses
the memory estimate (``estimate.estimate_for_config``).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from stylelora_tui.training.cards import Card, verdicts
from stylelora_tui.training.estimate import GiB, estimate_for_config, lora_parameters
from stylelora_tui.training.model_shapes import PROJECTIONS, ModelShape

#: Where the GPU table lives (package data).
GPU_TABLE = Path(__file__).resolve().parent.parent / "data" / "gpus.toml"
#: QLoRA: every 4-bit linear is dequantized to the compute dtype before each product (forward,
#: backward, recompute). Roughly 1.4x the time of a 16-bit LoRA (Raschka's Lit-GPT runs on
#: Llama-2-7B; assumed here for both backends, see docs/cost.md).
QLORA_OVERHEAD = 1.4
#: DoRA recomputes the weight norm of every adapted matrix each step (assumed; PEFT documents it as slower).
DORA_OVERHEAD = 1.3
#: Share of N cards' throughput that DDP keeps (gradient all-reduce of a LoRA is small; assumed).
DDP_EFFICIENCY = 0.9
#: A batch of unpacked records is padded to its longest: without packing and with more than one
#: record a micro-batch, a sequence costs the corpus's 90th-percentile record, not its mean.
PADDED_QUANTILE = "p90"
#: Tokens a record costs on top of its words in the lab's instruction format (chat template, roles).
INSTRUCTION_TEMPLATE_TOKENS = 16
TOKENS_PER_WORD = 1.3  # as corpus.report estimates when no tokenizer counted them
MAX_RECORDS_READ = 5000  # enough for a mean; a big corpus is not read to the end on every change


@dataclass(frozen=True)
class GpuType:
    name: str
    memory_gib: float
    peak_tflops: float
    bf16: bool
    price_per_hour: float
    price_source: str
    utilization: float
    utilization_source: str
    #: float32 peak, where the table gives one (the CPU); GPUs train in bf16 or fp16.
    fp32_tflops: float | None = None

    @property
    def card(self) -> Card:
        return Card(self.name, int(self.memory_gib * GiB))


@functools.lru_cache(maxsize=4)
def _read_table(path: str) -> tuple[tuple[GpuType, ...], str, str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    known = GpuType.__dataclass_fields__
    gpus = tuple(GpuType(**{k: v for k, v in row.items() if k in known}) for row in data["gpu"])
    return gpus, str(data["prices"]["as_of"]), " ".join(str(data["prices"]["source"]).split())


def gpu_types(prices: dict[str, float] | None = None, path: Path = GPU_TABLE) -> list[GpuType]:
    """The GPU table, with ``prices`` (GPU name -> dollars an hour, from settings) replacing its own."""
    gpus, _, _ = _read_table(str(path))
    wanted = {_key(name): price for name, price in (prices or {}).items()}
    return [
        replace(g, price_per_hour=wanted[_key(g.name)], price_source="your settings.toml [gpu_prices]")
        if _key(g.name) in wanted else g
        for g in gpus
    ]


def gpu_for_device(device_name: str, gpus: Iterable[GpuType] | None = None) -> GpuType | None:
    """The table's row for a CUDA device name (``torch.cuda.get_device_name()``), e.g. "NVIDIA A100-SXM4-80GB"."""
    import re

    name = str(device_name).lower()
    for gpu in gpus if gpus is not None else gpu_types():
        words = gpu.name.lower().split()
        if all(re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", name) for word in words):
            return gpu
    return None


def prices_note(path: Path = GPU_TABLE) -> str:
    """Where the table's prices come from and when."""
    _, as_of, source = _read_table(str(path))
    return f"prices as of {as_of}: {source}"


def _key(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def parse_price_table(table: Any, where: str = "settings.toml") -> tuple[dict[str, float], list[str]]:
    """``[gpu_prices]`` of settings.toml checked: (GPU name -> price, problems naming what was ignored)."""
    if table is None:
        return {}, []
    if not isinstance(table, dict):
        return {}, [f"{where}: [gpu_prices] must be a table of GPU name = dollars per hour, e.g. \"A100 80GB\" = 1.19"]
    names = {_key(g.name): g.name for g in gpu_types()}
    prices: dict[str, float] = {}
    problems = []
    for name, value in table.items():
        if _key(name) not in names:
            problems.append(f"{where}: [gpu_prices] {name!r} is not a GPU of the table; use one of {', '.join(names.values())}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            problems.append(f"{where}: [gpu_prices] {name!r} needs dollars per hour as a number >= 0, not {value!r}")
        else:
            prices[names[_key(name)]] = float(value)
    return prices, problems


def settings_path() -> Path:
    """The app's settings file, where ``[gpu_prices]`` overrides the table's prices."""
    from stylelora_tui import paths

    return paths.config_dir() / "settings.toml"


def load_price_overrides(path: Path | None = None) -> tuple[dict[str, float], list[str]]:
    """``[gpu_prices]`` of the user's settings.toml (the CLI's reading; the app reads it with its settings)."""
    path = path or settings_path()
    if not path.is_file():
        return {}, []
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path}: unreadable, the table's prices used ({exc})"]
    return parse_price_table(data.get("gpu_prices"), str(path))


# --------------------------------------------------------------------------- FLOPs


@dataclass(frozen=True)
class Flops:
    """FLOPs per trained token, by pass."""

    forward: float
    backward: float
    recompute: float

    @property
    def total(self) -> float:
        return self.forward + self.backward + self.recompute


def flops_per_token(
    shape: ModelShape, *, r: int, target_modules: Iterable[str], context: int, gradient_checkpointing: bool
) -> Flops:
    """FLOPs to train on one token of a ``context``-token sequence with a frozen base and a LoRA.

    Forward: 2 per weight of every decoder linear and of the LM head, 2 per
    LoRA parameter, and causal attention's QK^T and AV products (2 x context x
    q_dim a layer, the average position seeing half the context). Backward:
    the frozen base only passes gradients to its inputs (2 per weight, not
    the 4 of full training), the LoRA gets input and weight gradients (4 per
    parameter), attention twice its forward. Checkpointing recomputes the
    decoder layers' forward (not the LM head's).
    """
    targets = [m for m in set(target_modules) if m in PROJECTIONS]
    linear = 2.0 * shape.linear_parameters()
    head = 2.0 * shape.vocab_size * shape.hidden_size
    lora = 2.0 * lora_parameters(shape, r, targets)
    attention = 2.0 * shape.num_hidden_layers * max(int(context), 1) * shape.q_dim
    forward = linear + head + lora + attention
    backward = linear + head + 2 * lora + 2 * attention
    recompute = linear + lora + attention if gradient_checkpointing else 0.0
    return Flops(forward, backward, recompute)


# --------------------------------------------------------------------------- the work of a config


@dataclass(frozen=True)
class CorpusStats:
    records: int
    mean_tokens: float
    p90_tokens: float
    exact: bool  # counted by a tokenizer (report.json) rather than estimated from words


@functools.lru_cache(maxsize=16)
def _corpus_stats(train_file: str, mtime_ns: int, instruction: bool) -> CorpusStats | None:
    folder = Path(train_file).parent
    per_word, exact = TOKENS_PER_WORD, False
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        if report.get("tokens_exact") and report["words"]["mean"] > 0:
            per_word, exact = report["tokens"]["mean"] / report["words"]["mean"], True
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        pass
    records, lengths = 0, []
    try:
        with open(train_file, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict) or record.get("excluded"):
                    continue
                records += 1
                if len(lengths) < MAX_RECORDS_READ:
                    fields = ("instruction", "input", "output") if instruction else ("input", "output", "text")
                    words = sum(len(str(record.get(f) or "").split()) for f in fields)
                    lengths.append(words * per_word + (INSTRUCTION_TEMPLATE_TOKENS if instruction else 1))
    except OSError:
        return None
    if not lengths:
        return None
    lengths.sort()
    return CorpusStats(records, sum(lengths) / len(lengths), lengths[int(0.9 * (len(lengths) - 1))], exact)


def corpus_stats(corpus: Path, data_format: str = "instruction") -> CorpusStats | None:
    """Records and tokens per record of a prepared corpus (its ``train.jsonl``), or None."""
    train = Path(corpus) / "train.jsonl"
    try:
        mtime = train.stat().st_mtime_ns
    except OSError:
        return None
    return _corpus_stats(str(train), mtime, data_format != "raw_text")


@dataclass(frozen=True)
class Workload:
    tokens_per_step: int
    steps: int | None  # None: counted in epochs over a corpus that is not there
    context: int  # tokens of one sequence, for attention
    note: str  # where the tokens per sequence come from
    gpus: int = 1  # train.gpus > 1: DDP processes, each with its own micro-batches

    @property
    def tokens(self) -> int | None:
        return None if self.steps is None else self.steps * self.tokens_per_step


def workload(config: dict, workspace: Path | None = None) -> Workload:
    """Tokens per optimizer step and the steps of a (validated) config."""
    from stylelora_tui.training.plan import steps_for

    model, train, data = config["model"], config["train"], config.get("data", {})
    seq = int(model["max_seq_length"])
    batch, accumulation = int(train["per_device_train_batch_size"]), int(train["gradient_accumulation_steps"])
    packing = bool(train.get("packing"))
    # train.gpus > 1: DDP, each process trains its own micro-batches, so a step holds N times the tokens.
    # 0 (every visible GPU) is unknown before the launch: one.
    processes = max(int(train.get("gpus") or 1), 1)
    stats = None
    if data.get("corpus"):
        from stylelora_tui.config import resolve_path

        stats = corpus_stats(resolve_path(str(data["corpus"]), workspace), str(data.get("format") or "instruction"))
    if packing:
        per_sequence, note = seq, f"packed: {seq} tokens a sequence"
    elif stats is None:
        per_sequence, note = seq, f"no corpus read: {seq} tokens a sequence (the worst case)"
    else:
        length = stats.mean_tokens if batch == 1 else stats.p90_tokens
        per_sequence = max(1, min(seq, round(length)))
        what = "mean record" if batch == 1 else "longest record of a padded batch, about the p90"
        note = f"{per_sequence} tokens a sequence: the {what}, {'counted' if stats.exact else 'estimated from words'}"
    steps = int(train["max_steps"]) if train.get("max_steps", -1) > 0 else None
    if steps is None and stats is not None:
        sequences = stats.records if not packing else math.ceil(stats.records * stats.mean_tokens / seq)
        steps = steps_for(sequences, per_device_train_batch_size=batch * processes,
                          gradient_accumulation_steps=accumulation, num_train_epochs=float(train["num_train_epochs"]))
    return Workload(processes * batch * accumulation * per_sequence, steps, per_sequence, note, processes)


# --------------------------------------------------------------------------- per card


@dataclass(frozen=True)
class CardCost:
    gpu: GpuType
    verdict: str  # "fits" | "tight" | "won't fit" | "no bf16"
    memory_bytes: int
    checkpointing: bool
    tokens_per_s: float
    seconds: float | None  # None: the steps are unknown
    cost: float | None

    @property
    def runs(self) -> bool:
        return self.verdict in ("fits", "tight")


@dataclass(frozen=True)
class CostTable:
    rows: list[CardCost]
    workload: Workload
    overhead: float
    max_minutes: float
    prices_note: str
    gpus: int = 1  # train.gpus: cards per run (time and cost are for all of them)


def method_overhead(config: dict) -> float:
    overhead = QLORA_OVERHEAD if config["model"].get("load_in_4bit") else 1.0
    return overhead * (DORA_OVERHEAD if config["lora"].get("use_dora") else 1.0)


def _with_checkpointing(config: dict, on: bool) -> dict:
    copy = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    copy["train"]["gradient_checkpointing"] = on
    return copy


def cost_table(config: dict, workspace: Path | None = None, *, search_dirs: Iterable[Path] = (),
               prices: dict[str, float] | None = None, gpus: list[GpuType] | None = None) -> CostTable | None:
    """Per GPU type: fits?, tokens/s, time for the configured steps and its cost; None if the shape is unknown.

    ``train.gradient_checkpointing: auto`` is decided per card as the trainer
    decides it (``backends.checkpointing_decision``): off when the estimate
    without it is under 80% of the card's memory.
    """
    search_dirs = tuple(search_dirs)
    without = estimate_for_config(_with_checkpointing(config, False), search_dirs)
    with_ = estimate_for_config(_with_checkpointing(config, True), search_dirs)
    if without is None or with_ is None:
        return None
    work = workload(config, workspace)
    lora, train = config["lora"], config["train"]
    targets = lora.get("target_modules") or list(PROJECTIONS)
    targets = list(PROJECTIONS) if targets == "all-linear" else targets
    overhead = method_overhead(config)
    setting = train.get("gradient_checkpointing", "auto")
    # DDP: a whole model per card (the same memory), N cards' throughput less the all-reduce, N cards paid for.
    processes = work.gpus
    speed_up = processes * DDP_EFFICIENCY if processes > 1 else 1.0
    rows = []
    for gpu in gpus if gpus is not None else gpu_types(prices):
        card = gpu.card
        if setting in (None, "auto"):
            checkpointing = without.memory.total > 0.8 * card.usable_bytes
        else:
            checkpointing = bool(setting)
        memory = (with_ if checkpointing else without).memory
        verdict = verdicts(memory, [card])[0][1]
        if train.get("bf16") is True and not gpu.bf16:
            verdict = "no bf16"
        rank = int(lora["r"]) if lora.get("method", "lora") in ("lora", "loraplus") else 0  # other methods: no A, B
        flops = flops_per_token(without.shape, r=rank, target_modules=targets, context=work.context,
                                gradient_checkpointing=checkpointing)
        fp32 = train.get("bf16") is False and train.get("fp16") is not True and gpu.fp32_tflops
        peak = (gpu.fp32_tflops if fp32 else gpu.peak_tflops) * 1e12
        tokens_per_s = peak * gpu.utilization / (flops.total * overhead) * (speed_up if not gpu.fp32_tflops else 1.0)
        seconds = None if work.tokens is None else work.tokens / tokens_per_s
        cards = processes if not gpu.fp32_tflops else 1  # the CPU row is one machine
        cost = None if seconds is None or not gpu.price_per_hour else seconds / 3600 * gpu.price_per_hour * cards
        rows.append(CardCost(gpu, verdict, memory.total, checkpointing, tokens_per_s, seconds, cost))
    return CostTable(rows, work, overhead, float(train.get("max_minutes") or 0.0), prices_note(), processes)


# --------------------------------------------------------------------------- text


def format_duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3.4h``, ``2.1d``: short enough for a narrow column."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def format_money(dollars: float | None) -> str:
    if dollars is None:
        return "-"
    if dollars < 10:
        return f"${dollars:.2f}"
    if dollars < 10_000:
        return f"${dollars:.0f}"
    return f"${dollars / 1000:.0f}k"


MARKS = {"fits": "ok", "tight": "tight", "won't fit": "no", "no bf16": "no bf16"}
