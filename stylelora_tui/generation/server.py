"""The generation process: ``python -m stylelora_tui.generation.server RUN_DIR [RUN_DIR...]``.

It loads the base model once and each run's adapter under its own PEFT name
(``engine``), then answers JSON-line requests on stdin, one at a time, with
JSON lines on stdout. The request and reply shapes are in ``protocol``.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any

from stylelora_tui.generation.engine import Engine
from stylelora_tui.generation.protocol import GenerationError
from stylelora_tui.generation.run_adapters import resolve_run

__all__ = ["GenerationError", "main", "resolve_run"]


class Server:
    """Reads requests in a thread (so cancel arrives mid-generation); serves them in order."""

    def __init__(self, engine: Engine, out: Any):
        self.engine, self.out = engine, out
        self.lock = threading.Lock()
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.cancelled: set[Any] = set()
        self.shutdown = threading.Event()

    def emit(self, message: dict[str, Any]) -> None:
        with self.lock:
            try:
                self.out.write(json.dumps(message, ensure_ascii=False) + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                self.shutdown.set()  # the client is gone: stop working for nobody

    def read_stdin(self, stream: Any) -> None:
        for line in stream:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                self.emit({"id": None, "error": f"a request must be one JSON object per line ({exc})"})
                continue
            op = message.get("op")
            if op == "cancel":
                self.cancelled.add(message.get("id"))
            elif op == "shutdown":
                self.shutdown.set()  # cancels the request in flight; the rest are dropped
                break
            else:
                self.requests.put(message)
        # End of input (a piped script): answer what was asked, then exit.
        self.requests.put(None)

    def serve(self) -> None:
        while True:
            request = self.requests.get()
            if request is None or self.shutdown.is_set():
                return
            self.handle(request)

    def handle(self, request: dict[str, Any]) -> None:
        rid = request.get("id")

        def cancelled() -> bool:
            return rid in self.cancelled or self.shutdown.is_set()

        handlers = {"generate": self.engine.generate, "eval_loss": self.engine.eval_loss}
        try:
            handler = handlers.get(request.get("op"))
            if handler is None:
                raise GenerationError(f"unknown op {request.get('op')!r}; use generate, eval_loss, cancel or shutdown")
            if not cancelled():
                handler(request, self.emit, cancelled)
        except GenerationError as exc:
            self.emit({"id": rid, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a bad request must never take the process down
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.emit({"id": rid, "error": f"{type(exc).__name__}: {first}"})
            import traceback

            traceback.print_exc(file=sys.stderr)
        self.emit({"id": rid, "finished": True, "cancelled": cancelled()})
        self.cancelled.discard(rid)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The protocol owns the real stdout; anything else printing (libraries, C code) lands on stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def fatal(message: str) -> int:
        out.write(json.dumps({"error": message, "fatal": True}) + "\n")
        out.flush()
        return 1

    if not argv or argv[0] in ("-h", "--help"):
        from stylelora_tui.generation import protocol

        print(__doc__, protocol.__doc__, sep="\n", file=sys.stderr)
        return fatal("usage: python -m stylelora_tui.generation.server RUN_DIR [RUN_DIR...]") if not argv else 0
    try:
        engine = Engine([resolve_run(path) for path in argv])
        engine.load()
    except GenerationError as exc:
        return fatal(str(exc))
    except Exception as exc:  # noqa: BLE001 - the client gets the reason, the traceback goes to stderr
        import traceback

        traceback.print_exc(file=sys.stderr)
        return fatal(f"could not load the model: {type(exc).__name__}: {str(exc).strip()[:500]}")
    first = engine.adapters[0]
    server = Server(engine, out)
    server.emit({
        "ready": True, "model": first.base_model, "model_path": first.base_path, "device": engine.device,
        "dtype": engine.dtype, "variants": engine.variants, "runs": {a.run.name: str(a.adapter_dir) for a in engine.adapters},
        "eos_token_ids": engine.eos_ids, "pad_token_id": engine.pad_id, "warnings": engine.warnings,
    })
    threading.Thread(target=server.read_stdin, args=(sys.stdin,), daemon=True).start()
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
