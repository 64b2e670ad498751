"""Reading and writing config files: safe YAML in, commented YAML out.

PyYAML is imported when a YAML text is first read or written (the app starts
without it), and ruamel.yaml lazily for comment-preserving saves.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from stylelora_tui.config.schema import DEMO_MODEL, SCHEMA, defaults
from stylelora_tui.config.validation import ConfigError, Problem, resolve_path, validate


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
    # A sweep's grid sits beside the run config (stylelora_tui.sweeps): checked here, not part of the run config.
    sweep = raw.pop("sweep") if isinstance(raw, dict) and "sweep" in raw else None
    config, problems = validate(raw, workspace=workspace, check_paths=check_paths, lines=lines, source=str(path))
    if sweep is not None:
        from stylelora_tui.sweeps.grid import check_grid

        problems += check_grid(sweep, lines=lines, source=str(path))[1]
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
    if resolved.get("train", {}).get("accelerate_config"):
        resolved["train"]["accelerate_config"] = str(resolve_path(resolved["train"]["accelerate_config"], workspace).resolve())
    name = resolved["model"]["name"]
    if name != DEMO_MODEL:
        candidate = resolve_path(name, workspace)
        if candidate.exists():
            resolved["model"]["name"] = str(candidate.resolve())
    return resolved
