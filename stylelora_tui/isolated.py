"""Run a long, CPU-bound core function in a child process, with progress and cancel.

A corpus import is pure Python; run in a thread of the app, it holds the GIL
and the app answers a key only every second or two while a few books import.
In a child process (``python -m stylelora_tui.isolated``) the app stays as
responsive as when idle. The child reports progress as JSON lines on its
stdout, a cancel request reaches it as SIGTERM (the function sees its
``cancel`` event set and stops cleanly), and its result comes back pickled.
"""

from __future__ import annotations

import base64
import importlib
import json
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any, Callable

_POLL_S = 0.1


class IsolatedProcessDied(RuntimeError):
    """The child process ended without a result (killed, out of memory, crashed)."""


def run_isolated(
    function: Callable[..., Any],
    *args: Any,
    progress: Callable[[str, float | None], None] | None = None,
    cancel: threading.Event | None = None,
    errors: tuple[type[BaseException], ...] = (),
    **kwargs: Any,
) -> Any:
    """``function(*args, progress=..., cancel=..., **kwargs)`` in a child process; its result.

    ``function`` must be a module-level function and its arguments and result
    picklable. An error of one of the ``errors`` types is raised again as that
    type; any other as RuntimeError naming it.
    """
    cancelled = cancel is not None and cancel.is_set()
    request = pickle.dumps((function.__module__, function.__qualname__, args, kwargs, cancelled))
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen([sys.executable, "-m", "stylelora_tui.isolated"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=stderr)
        try:
            child.stdin.write(request)  # type: ignore[union-attr]
            child.stdin.close()  # type: ignore[union-attr]
            reply = _follow(child, progress, cancel)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
        if reply is None:
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise IsolatedProcessDied(f"the {function.__name__} process ended without a result "
                                      f"(exit code {child.returncode})" + (": " + " | ".join(tail) if tail else ""))
    if "result" in reply:
        return pickle.loads(base64.b64decode(reply["result"]))
    module, name, message = reply["error"]
    for error_type in errors:
        if (error_type.__module__, error_type.__name__) == (module, name):
            raise error_type(message)
    raise RuntimeError(f"{name}: {message}")


def _follow(child: subprocess.Popen, progress: Callable[[str, float | None], None] | None,
            cancel: threading.Event | None) -> dict[str, Any] | None:
    """Read the child's lines until its result or error (None if it ended without one)."""
    stream = child.stdout
    assert stream is not None
    ready = signalled = False  # SIGTERM only once the child handles it (it says "ready")
    while True:
        if ready and cancel is not None and cancel.is_set() and not signalled and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            signalled = True
        if not select.select([stream], [], [], _POLL_S)[0]:
            continue
        line = stream.readline()
        if not line:
            return None
        message = json.loads(line)
        if "ready" in message:
            ready = True
        elif "progress" in message:
            if progress is not None:
                progress(*message["progress"])
        else:
            return message


def _main() -> int:
    module, qualname, args, kwargs, cancelled = pickle.load(sys.stdin.buffer)
    protocol = sys.stdout
    sys.stdout = sys.stderr  # whatever the function prints stays out of the protocol
    cancel = threading.Event()
    if cancelled:
        cancel.set()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: cancel.set())

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    def progress(text: str, fraction: float | None = None) -> None:
        send({"progress": [text, fraction]})

    send({"ready": True})

    try:
        function = getattr(importlib.import_module(module), qualname)
        result = function(*args, progress=progress, cancel=cancel, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - every error goes back to the parent, by type and message
        send({"error": [type(exc).__module__, type(exc).__name__, str(exc)]})
        return 1
    send({"result": base64.b64encode(pickle.dumps(result)).decode("ascii")})
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
