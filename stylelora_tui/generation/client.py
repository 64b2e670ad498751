"""A light client for the generation process (no torch here: the app can import it).

    with GenerationClient([run.path]) as client:
        ready = client.start()
        rid = client.generate(prompt="The fog came in", n=5, seed=0)
        for event in client.events(rid):
            ...  # token, done, error lines; ends after the request's "finished" line

The process's stdout is read by a thread into a queue, so ``events`` can be
iterated with a timeout and a second thread can ``cancel`` meanwhile. See
``stylelora_tui.generation.protocol`` for the protocol.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator

from stylelora_tui.generation.protocol import SAMPLING_DEFAULTS as _D
from stylelora_tui.generation.protocol import samples_by_variant  # noqa: F401 - the replies' reader, beside the client


class GenerationProcessError(RuntimeError):
    """The generation process failed to start, or died."""


_EOF = object()


class GenerationClient:
    def __init__(self, run_dirs: Iterable[str | Path], *, python: str | None = None, env: dict[str, str] | None = None):
        self.run_dirs = [str(Path(d)) for d in run_dirs]
        self.python = python or sys.executable
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] | None = None
        self._lines: queue.Queue[Any] = queue.Queue()
        self._stash: dict[Any, deque[dict[str, Any]]] = {}
        self._stderr: deque[str] = deque(maxlen=40)
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 600) -> dict[str, Any]:
        """Start the process and wait for its ready line (loading a model takes a while)."""
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.process = subprocess.Popen(
            [self.python, "-m", "stylelora_tui.generation.server", *self.run_dirs],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", bufsize=1, env=env,
        )
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        # Drained always: a full stderr pipe would block the process.
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        first = self._next_line(timeout)
        if first is _EOF or not isinstance(first, dict) or not first.get("ready"):
            reason = first.get("error") if isinstance(first, dict) else None
            self.close()
            raise GenerationProcessError(reason or f"the generation process ended before it was ready: {self.stderr_tail()}")
        self.ready = first
        return first

    def close(self, timeout: float = 10) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.send({"op": "shutdown"})
                self.process.stdin.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "GenerationClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    # ------------------------------------------------------------------ requests

    def send(self, message: dict[str, Any]) -> None:
        if self.process is None or self.process.stdin is None:
            raise GenerationProcessError("the generation process is not running; call start() first")
        with self._write_lock:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()

    def request(self, op: str, **fields: Any) -> str:
        rid = f"r{next(self._ids)}"
        self.send({"id": rid, "op": op, **{k: v for k, v in fields.items() if v is not None}})
        return rid

    def generate(self, *, prompt: str | None = None, record: dict[str, Any] | None = None, variants: list[str] | None = None,
                 n: int = _D["n"], seed: int = _D["seed"], temperature: float = _D["temperature"], top_p: float = _D["top_p"],
                 max_new_tokens: int = _D["max_new_tokens"], repetition_penalty: float = _D["repetition_penalty"]) -> str:
        return self.request("generate", prompt=prompt, record=record, variants=variants, n=n, seed=seed,
                            temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            repetition_penalty=repetition_penalty)

    def eval_loss(self, *, variants: list[str] | None = None, limit: int | None = None, records: list[dict] | None = None,
                  data_format: str | None = None, split: str | None = None) -> str:
        return self.request("eval_loss", variants=variants, limit=limit, records=records, data_format=data_format, split=split)

    def cancel(self, rid: str) -> None:
        self.send({"op": "cancel", "id": rid})

    def events(self, rid: str, timeout: float | None = 600) -> Iterator[dict[str, Any]]:
        """The events of one request, up to and including its ``finished`` line.

        ``timeout`` is the longest wait for any one line; events of other
        requests met on the way are kept for their own ``events`` call.
        """
        stash = self._stash.setdefault(rid, deque())
        while True:
            while stash:
                event = stash.popleft()
                yield event
                if event.get("finished"):
                    self._stash.pop(rid, None)
                    return
            line = self._next_line(timeout)
            if line is _EOF:
                raise GenerationProcessError(f"the generation process ended: {self.stderr_tail()}")
            if line.get("id") == rid or line.get("id") is None:
                stash.append(line)
            else:
                self._stash.setdefault(line.get("id"), deque()).append(line)

    def collect(self, rid: str, timeout: float | None = 600) -> list[dict[str, Any]]:
        return list(self.events(rid, timeout))

    # ------------------------------------------------------------------ pumps

    def _next_line(self, timeout: float | None) -> Any:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise GenerationProcessError(f"no answer from the generation process in {timeout:.0f} s") from None

    def _pump_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                self._stderr.append(f"(stray output) {line.rstrip()}")
                continue
            if isinstance(message, dict):
                self._lines.put(message)
        self._lines.put(_EOF)

    def _pump_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line.rstrip())

