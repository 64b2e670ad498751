"""The run config: one YAML file describes a training run.

``schema`` lists every key with its default and help, ``presets`` the named
starting points, ``validation`` checks a parsed config (one message per
problem, naming the key and line), and ``files`` reads and writes YAML. The
public names are re-exported here: ``from stylelora_tui import config``.

Light: it never imports torch, transformers or Textual, and PyYAML only when
a YAML text is first read or written.
"""

from stylelora_tui.config.files import diff, load, parse_yaml, resolve, save, to_yaml
from stylelora_tui.config.presets import PRESETS, preset
from stylelora_tui.config.schema import (
    ALL_PROJECTIONS,
    BACKENDS,
    DEMO_MODEL,
    SCHEMA,
    SECTION_TITLES,
    Field,
    defaults,
)
from stylelora_tui.config.validation import (
    ConfigError,
    Problem,
    coerce_value,
    looks_like_path,
    resolve_path,
    validate,
)

__all__ = [
    "ALL_PROJECTIONS", "BACKENDS", "DEMO_MODEL", "PRESETS", "SCHEMA", "SECTION_TITLES", "ConfigError", "Field",
    "Problem", "coerce_value", "defaults", "diff", "load", "looks_like_path", "parse_yaml", "preset", "resolve",
    "resolve_path", "save", "to_yaml", "validate",
]
