"""How a training failure is told to the user: out of memory, a full disk, a model that cannot load.

Light (no torch): the trainer classifies its exceptions with it, and the app
imports the out-of-memory advice from here, so both say the same thing.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

OOM_ADVICE = (
    "lower train.per_device_train_batch_size (raise gradient_accumulation_steps to keep the effective batch), "
    "lower model.max_seq_length, set model.load_in_4bit: true, or keep train.gradient_checkpointing: true"
)
OOM_HINT = f"out of memory: {OOM_ADVICE}"
PLAIN_OOM_HINT = f"Out of memory. To fit: {OOM_ADVICE}."

# What torch and safetensors say when a write hits a full disk without an OSError.
_WRITE_FAILURE_MARKERS = ("unexpected pos", "iostream error", "file write failed", "PytorchStreamWriter failed")
# Below this, any failed write is taken for a full disk.
_NEARLY_FULL_BYTES = 1 << 20
_LOW_SPACE_BYTES = 64 << 20


class TrainingFailure(RuntimeError):
    """A failure with a message meant for the user (no traceback needed)."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


def free_bytes(path: Path) -> int | None:
    """Free space on the file system holding ``path`` (its nearest existing folder)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def disk_full_message(path: Path) -> str:
    free = free_bytes(path)
    figure = f"{free / 1e6:.1f} MB" if free is not None else "unknown space"
    return f"no space left on device ({figure} free at {path})"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_disk_full(exc: BaseException, where: Path | None = None) -> bool:
    """Did ``exc`` (or what caused it) come from a full disk at ``where``?

    ENOSPC says so plainly; torch's checkpoint writer reports it as
    ``unexpected pos`` or ``iostream error``, which we trust when the disk
    is indeed (nearly) full.
    """
    chain = _chain(exc)
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain):
        return True
    if any("No space left on device" in str(e) for e in chain):
        return True
    if where is None:
        return False
    free = free_bytes(where)
    if free is None:
        return False
    write_failure = any(marker in str(e) for e in chain for marker in _WRITE_FAILURE_MARKERS)
    return (write_failure and free < _LOW_SPACE_BYTES) or (
        free < _NEARLY_FULL_BYTES and any(isinstance(e, (OSError, RuntimeError)) for e in chain)
    )


def model_load_failure(name: str, exc: BaseException) -> TrainingFailure | None:
    """A clear failure for a model that transformers could not find, else None."""
    text = f"{type(exc).__name__}: {exc}"
    markers = ("is not a local folder", "RepositoryNotFound", "not a valid model identifier", "LocalEntryNotFound",
               "offline mode", "Connection", "couldn't connect", "404 Client Error", "does not appear to have a file")
    if any(marker.lower() in text.lower() for marker in markers):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TrainingFailure(
            f"model {name!r} could not be loaded: not a local folder, and not found on (or not reachable at) the "
            f"Hugging Face Hub. Check model.name, your network, and HF_TOKEN for gated models. ({first})",
            "model",
        )
    return None


def classify(exc: BaseException, run_path: Path | None = None) -> tuple[str, str, str]:
    """(kind, message for the user, the exception's own first line) for an unexpected exception."""
    text = str(exc)
    name = type(exc).__name__
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    detail = f"{name}: {first_line}" if first_line else name
    if isinstance(exc, MemoryError) or "OutOfMemoryError" in name or "out of memory" in text.lower():
        return "oom", f"{OOM_HINT} ({detail})", detail
    if is_disk_full(exc, run_path):
        if run_path is None:
            return "disk", f"{disk_full_message(Path('.'))}; free some space, then resume the run", detail
        message = (f"{disk_full_message(run_path)}; free some space, then resume from the last complete checkpoint: "
                   f"stylelora-tui train --resume {run_path.name}")
        return "disk", message, detail
    return "error", detail, detail
