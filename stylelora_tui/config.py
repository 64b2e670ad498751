"""The run config: one YAML file describes a training run.

Keys are the libraries' own names (PEFT ``LoraConfig``, TRL ``SFTConfig``) so a
user who knows the Hugging Face stack recognises every one. Keys may be added
over time but never renamed. Validation runs before anything heavy loads and
reports one message per problem, naming the key (and the YAML line when the
config came from a file).

This module is light: PyYAML, imported when a YAML text is first read or
written (the app starts without it), and ruamel.yaml lazily for
comment-preserving saves. It never imports torch, transformers or Textual.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BACKENDS = ["auto", "unsloth", "peft"]
DEMO_MODEL = "demo"


@dataclass(frozen=True)
class Field:
    """One config key: its type, default, bounds and a line of help."""

    kind: str  # "str" | "int" | "float" | "bool" | "list" | "choice" | "bool_or_auto"
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    exclusive_maximum: float | None = None
    nonempty: bool = False
    allowed_items: tuple[str, ...] = ()


SCHEMA: dict[str, dict[str, Field]] = {
    "model": {
        "name": Field(
            "str",
            "unsloth/Llama-3.2-3B-Instruct-bnb-4bit",
            'Hub id, local folder, .gguf file, or "demo" (SmolLM2-135M-Instruct, runs on a CPU)',
            nonempty=True,
        ),
        "max_seq_length": Field("int", 2048, "longest training sequence in tokens", minimum=16, maximum=1_048_576),
        "load_in_4bit": Field("bool", True, "QLoRA: load the base weights in 4-bit NF4 (bitsandbytes)"),
        "backend": Field("choice", "auto", "unsloth (the lab's path), peft (plain transformers + PEFT), or auto", choices=tuple(BACKENDS)),
    },
    "lora": {
        "r": Field("int", 16, "LoRA rank", exclusive_minimum=0, maximum=4096),
        "lora_alpha": Field("int", 32, "LoRA scaling numerator (scale = alpha / r)", exclusive_minimum=0),
        "lora_dropout": Field("float", 0.0, "dropout on the LoRA path", minimum=0.0, exclusive_maximum=1.0),
        "target_modules": Field(
            "list",
            list(ALL_PROJECTIONS),
            "linear layers that get adapters",
            nonempty=True,
            allowed_items=tuple(ALL_PROJECTIONS),
        ),
        "use_rslora": Field("bool", False, "rank-stabilised scaling alpha / sqrt(r)"),
        "use_dora": Field("bool", False, "weight-decomposed LoRA (DoRA); slower"),
    },
    "train": {
        "per_device_train_batch_size": Field("int", 2, "sequences per device per step", exclusive_minimum=0),
        "gradient_accumulation_steps": Field("int", 4, "micro-batches per optimizer step", exclusive_minimum=0),
        "learning_rate": Field("float", 2.0e-4, "peak learning rate", exclusive_minimum=0.0, maximum=1.0),
        "num_train_epochs": Field("float", 2.0, "passes over the training split", exclusive_minimum=0.0),
        "max_steps": Field("int", -1, "stop after this many optimizer steps (-1: use num_train_epochs)", minimum=-1),
        "logging_steps": Field("int", 1, "log the loss every N steps", exclusive_minimum=0),
        "save_steps": Field("int", 50, "checkpoint every N steps", exclusive_minimum=0),
        "eval_steps": Field("int", 0, "evaluate on the held-out split every N steps (0: at each checkpoint)", minimum=0),
        "save_total_limit": Field("int", 3, "checkpoints kept (oldest deleted)", exclusive_minimum=0),
        "warmup_steps": Field("int", 5, "linear warm-up steps", minimum=0),
        "lr_scheduler_type": Field(
            "choice", "linear", "learning-rate schedule",
            choices=("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"),
        ),
        "weight_decay": Field("float", 0.01, "AdamW weight decay", minimum=0.0, maximum=1.0),
        "max_grad_norm": Field("float", 1.0, "gradient clipping norm", exclusive_minimum=0.0),
        "optim": Field(
            "choice", "auto", "optimizer (auto: adamw_8bit on CUDA, adamw_torch elsewhere)",
            choices=("auto", "adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adamw_torch_fused", "sgd", "adafactor"),
        ),
        "gradient_checkpointing": Field("bool", True, "recompute activations in the backward pass to save memory"),
        "bf16": Field("bool_or_auto", "auto", "bfloat16 compute (auto: wherever the hardware supports it)"),
        "packing": Field("bool", False, "pack several short records into one sequence"),
        "seed": Field("int", 3407, "random seed (the lab's)", minimum=0),
        "sample_steps": Field(
            "int", 0, "write a sample continuation of a held-out prompt every N steps (0: at each checkpoint, -1: never)",
            minimum=-1,
        ),
        "sample_max_new_tokens": Field("int", 96, "length of those live samples in tokens", exclusive_minimum=0),
    },
    "data": {
        "corpus": Field("str", "corpus", "folder written by `stylelora-tui prepare` (relative to the workspace)", nonempty=True),
    },
}

SECTION_TITLES = {"model": "Model", "lora": "LoRA", "train": "Training", "data": "Data"}


def defaults() -> dict[str, dict[str, Any]]:
    """The lab's values: a fresh, fully populated config dict."""
    return {section: {key: copy.deepcopy(spec.default) for key, spec in keys.items()} for section, keys in SCHEMA.items()}


def _merge(base: dict[str, dict[str, Any]], overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = copy.deepcopy(base)
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(copy.deepcopy(dict(values)))
    return merged


PRESETS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "lab": ("The lab's defaults: Llama-3.2-3B QLoRA, r=16, all projections", defaults()),
    "t4-qlora": (
        "QLoRA that fits a 16 GB T4: 4-bit, sequence 1024, batch 2 x 4, 8-bit Adam",
        _merge(defaults(), {"model": {"max_seq_length": 1024}, "train": {"optim": "adamw_8bit", "bf16": False}}),
    ),
    "cpu-demo": (
        "The CPU demo: SmolLM2-135M on the embedded corpus, a few minutes",
        _merge(
            defaults(),
            {
                "model": {"name": DEMO_MODEL, "max_seq_length": 384, "load_in_4bit": False},
                # ~100 tokens/s on 2 CPU cores in float32: 30 steps of 2 records is ~4 minutes.
                "train": {
                    "per_device_train_batch_size": 2,
                    "gradient_accumulation_steps": 1,
                    "learning_rate": 1.0e-3,
                    "max_steps": 30,
                    "save_steps": 15,
                    "warmup_steps": 2,
                },
            },
        ),
    ),
}


def preset(name: str) -> dict[str, dict[str, Any]]:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name][1])


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, tied to a dotted key and (when known) a line."""

    key: str
    message: str
    line: int | None = None
    source: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = f"{self.source}:{self.line}: " if self.line else f"{self.source}: "
        elif self.line:
            where = f"line {self.line}: "
        return f"{where}{self.key}: {self.message}"


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "text", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )


def coerce_value(spec: Field, value: Any) -> tuple[Any, str | None]:
    """Check one value against its field; return (value, error message or None).

    Numbers written as text (PyYAML reads ``2e-4`` as a string) are accepted
    for float fields, as a user would expect.
    """
    kind = spec.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        return value, f"must be true or false, got {_type_name(value)} {value!r}"
    if kind == "bool_or_auto":
        if isinstance(value, bool) or value == "auto":
            return value, None
        return value, f'must be true, false or "auto", got {value!r}'
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return value, f"must be an integer, got {_type_name(value)} {value!r}"
    elif kind == "float":
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                return value, f"must be a number, got text {value!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, f"must be a number, got {_type_name(value)} {value!r}"
        value = float(value)
        if not math.isfinite(value):
            return value, f"must be a finite number, got {value!r}"
    elif kind in ("str", "choice"):
        if not isinstance(value, str):
            return value, f"must be text, got {_type_name(value)} {value!r}"
        if spec.nonempty and not value.strip():
            return value, "must not be empty"
        if kind == "choice" and value not in spec.choices:
            return value, f"must be one of {', '.join(spec.choices)}; got {value!r}{_did_you_mean(value, spec.choices)}"
        return value, None
    elif kind == "list":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return value, f"must be a list of names, got {_type_name(value)} {value!r}"
        if spec.nonempty and not value:
            return value, "must name at least one module"
        if spec.allowed_items:
            for item in value:
                if item not in spec.allowed_items:
                    return value, (
                        f"unknown module {item!r}{_did_you_mean(item, spec.allowed_items)}; "
                        f"choose from {', '.join(spec.allowed_items)}"
                    )
        if len(set(value)) != len(value):
            return value, "lists a module twice"
        return value, None
    # Numeric bounds.
    if spec.minimum is not None and value < spec.minimum:
        return value, f"must be >= {spec.minimum:g}, got {value!r}"
    if spec.exclusive_minimum is not None and value <= spec.exclusive_minimum:
        return value, f"must be > {spec.exclusive_minimum:g}, got {value!r}"
    if spec.maximum is not None and value > spec.maximum:
        return value, f"must be <= {spec.maximum:g}, got {value!r}"
    if spec.exclusive_maximum is not None and value >= spec.exclusive_maximum:
        return value, f"must be < {spec.exclusive_maximum:g}, got {value!r}"
    return value, None


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.endswith(".gguf") or "\\" in name or name.count("/") > 1


def _check_model_name(name: str, workspace: Path | None) -> str | None:
    if name == DEMO_MODEL:
        return None
    candidate = resolve_path(name, workspace)
    if candidate.exists():
        if candidate.is_dir() and not (candidate / "config.json").exists() and not list(candidate.glob("*.gguf")):
            return f"folder {candidate} has no config.json: not a model folder"
        return None
    if looks_like_path(name):
        return f"no such model file or folder: {candidate}"
    if not _HUB_ID.match(name):
        return f'{name!r} is neither a local folder nor a Hub id like "owner/model"'
    return None


def _check_corpus(corpus: str, workspace: Path | None) -> str | None:
    folder = resolve_path(corpus, workspace)
    if not folder.exists():
        return f"corpus folder {folder} does not exist; run `stylelora-tui prepare SOURCE -o {corpus}` first"
    if not folder.is_dir():
        return f"{folder} is not a folder; point data.corpus at the output folder of `stylelora-tui prepare`"
    train = folder / "train.jsonl"
    if not train.exists():
        return f"corpus folder {folder} has no train.jsonl; run `stylelora-tui prepare SOURCE -o {corpus}` first"
    if train.stat().st_size == 0:
        return f"{train} is empty: the corpus has no training records"
    return None


def resolve_path(value: str, workspace: Path | None) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and workspace is not None:
        path = workspace / path
    return path


def validate(
    raw: Any,
    *,
    workspace: Path | None = None,
    check_paths: bool = True,
    lines: Mapping[str, int] | None = None,
    source: str | None = None,
) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """Check a parsed config; return the completed config and every problem found.

    Missing keys take their defaults. ``lines`` maps dotted keys to YAML line
    numbers so messages can point into the file.
    """
    lines = lines or {}
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        line = lines.get(key) or lines.get(key.split(".")[0])
        problems.append(Problem(key, message, line, source))

    result = defaults()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return result, [Problem("(top level)", f"must be a mapping of sections ({', '.join(SCHEMA)}), got {_type_name(raw)}", None, source)]
    for section, values in raw.items():
        if section not in SCHEMA:
            problem(str(section), f"unknown section{_did_you_mean(str(section), SCHEMA)}; sections are {', '.join(SCHEMA)}")
            continue
        if values is None:
            continue
        if not isinstance(values, dict):
            problem(section, f"must be a mapping of keys, got {_type_name(values)}")
            continue
        for key, value in values.items():
            dotted = f"{section}.{key}"
            spec = SCHEMA[section].get(str(key))
            if spec is None:
                # A key from another section is a common slip: say where it belongs.
                home = next((s for s, keys in SCHEMA.items() if key in keys), None)
                hint = f" (it belongs in the {home!r} section)" if home else _did_you_mean(str(key), SCHEMA[section])
                problem(dotted, f"unknown key{hint}")
                continue
            coerced, error = coerce_value(spec, value)
            if error:
                problem(dotted, error)
            else:
                result[section][key] = coerced
    if not problems:
        _cross_checks(result, problem)
    if check_paths and not any(p.key in ("model.name", "data.corpus") for p in problems):
        error = _check_model_name(result["model"]["name"], workspace)
        if error:
            problem("model.name", error)
        error = _check_corpus(result["data"]["corpus"], workspace)
        if error:
            problem("data.corpus", error)
    return result, problems


def _cross_checks(config: dict[str, dict[str, Any]], problem: Any) -> None:
    train = config["train"]
    if train["max_steps"] == 0:
        problem("train.max_steps", "must be -1 (use num_train_epochs) or a positive number of steps, got 0")


def _key_lines(text: str) -> dict[str, int]:
    """Map dotted keys to 1-based line numbers, from the YAML node tree (safe)."""
    import yaml

    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key_node, value_node in root.value:
        section = str(key_node.value)
        lines[section] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            for sub_key, _ in value_node.value:
                lines[f"{section}.{sub_key.value}"] = sub_key.start_mark.line + 1
    return lines


def parse_yaml(text: str, *, source: str | None = None) -> tuple[Any, dict[str, int]]:
    """``yaml.safe_load`` with a clear message for a syntax error."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem("(syntax)", f"not valid YAML: {reason}", line, source)]) from None
    return data, _key_lines(text)


def load(path: Path | str, *, workspace: Path | None = None, check_paths: bool = True) -> dict[str, dict[str, Any]]:
    """Read and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([Problem("(file)", f"config file {path} does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem("(file)", f"cannot read config file {path}: {exc}")]) from None
    raw, lines = parse_yaml(text, source=str(path))
    config, problems = validate(raw, workspace=workspace, check_paths=check_paths, lines=lines, source=str(path))
    if problems:
        raise ConfigError(problems)
    return config


def diff(config: Mapping[str, Mapping[str, Any]], base: Mapping[str, Mapping[str, Any]] | None = None) -> list[tuple[str, Any, Any]]:
    """(dotted key, base value, this value) for every key that differs."""
    base = base if base is not None else defaults()
    changes = []
    for section, keys in SCHEMA.items():
        for key in keys:
            old = base.get(section, {}).get(key)
            new = config.get(section, {}).get(key)
            if old != new:
                changes.append((f"{section}.{key}", old, new))
    return changes


# --------------------------------------------------------------------------- writing


def to_yaml(config: Mapping[str, Mapping[str, Any]], *, comments: bool = True) -> str:
    """A fresh YAML document in schema order, with each key's help as a comment."""
    out: list[str] = []
    for section, keys in SCHEMA.items():
        out.append(f"{section}:")
        values = config.get(section, {})
        for key, spec in keys.items():
            value = values.get(key, spec.default)
            rendered = _render_scalar(value)
            line = f"  {key}: {rendered}"
            if comments:
                line = f"{line:<48} # {spec.help}"
            out.append(line)
    return "\n".join(out) + "\n"


def _render_scalar(value: Any) -> str:
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
        # "2.0e-04": PyYAML (YAML 1.1) reads a float exponent only with a dot and a sign.
        return f"{value:.1e}"
    import yaml

    rendered = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return rendered.removesuffix("...").strip()


def save(path: Path | str, config: Mapping[str, Mapping[str, Any]]) -> None:
    """Write a config; an existing file keeps its comments and key order.

    Written to a temporary file and renamed, so a crash never leaves half a config.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = None
    if path.exists():
        text = _update_preserving_comments(path.read_text(encoding="utf-8-sig"), config)
    if text is None:
        text = to_yaml(config)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _update_preserving_comments(text: str, config: Mapping[str, Mapping[str, Any]]) -> str | None:
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    try:
        doc = rt.load(text)
    except YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    for section, keys in SCHEMA.items():
        values = config.get(section, {})
        if section not in doc or not isinstance(doc[section], dict):
            doc[section] = {}
        for key, spec in keys.items():
            value = values.get(key, spec.default)
            current = doc[section].get(key, object())
            if current != value:
                doc[section][key] = value
    buffer = io.StringIO()
    rt.dump(doc, buffer)
    return buffer.getvalue()


def resolve(config: Mapping[str, Mapping[str, Any]], workspace: Path) -> dict[str, dict[str, Any]]:
    """A copy with relative paths made absolute, as stored in a run directory."""
    resolved = copy.deepcopy(dict(config))
    resolved = {k: dict(v) for k, v in resolved.items()}
    resolved["data"]["corpus"] = str(resolve_path(resolved["data"]["corpus"], workspace).resolve())
    name = resolved["model"]["name"]
    if name != DEMO_MODEL:
        candidate = resolve_path(name, workspace)
        if candidate.exists():
            resolved["model"]["name"] = str(candidate.resolve())
    return resolved
