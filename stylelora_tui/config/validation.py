"""Validation: one message per problem, naming the key and (from a file) its line.

Runs before anything heavy loads. Numbers written as text are accepted where
a user would expect it; a key in the wrong section is pointed to its home.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from stylelora_tui.config.schema import DEMO_MODEL, SCHEMA, Field, defaults


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
        accelerate_config = result["train"].get("accelerate_config")
        if accelerate_config and not resolve_path(accelerate_config, workspace).is_file():
            problem("train.accelerate_config", f"no such file: {resolve_path(accelerate_config, workspace)} "
                    "(write one with `accelerate config`, or leave it empty for one machine)")
    return result, problems


def _cross_checks(config: dict[str, dict[str, Any]], problem: Any) -> None:
    train = config["train"]
    if train["max_steps"] == 0:
        problem("train.max_steps", "must be -1 (use num_train_epochs) or a positive number of steps, got 0")
    _method_checks(config, problem)


def _method_checks(config: dict[str, dict[str, Any]], problem: Any) -> None:
    """Fields of another method at their defaults are ignored (switching methods keeps a config valid); a LoRA
    variant switched on under a method without LoRA matrices is an error, since it would silently not be trained."""
    lora = config["lora"]
    method = lora["method"]
    if method not in ("lora", "loraplus"):
        for key, off in (("use_dora", False), ("use_rslora", False), ("init_lora_weights", "true")):
            if lora[key] != off:
                problem(f"lora.{key}", f"applies to lora and loraplus only, not to lora.method {method}; "
                        f"set it to {str(off).lower()} or choose method lora")
