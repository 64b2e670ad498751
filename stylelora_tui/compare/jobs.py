"""The generation process behind a comparison, and the requests queued for it.

``GenerationJobs.run`` (meant for a thread) starts the process, reports it
ready (or why not), then sends the queued jobs one at a time and hands their
reply lines back in batches; ``submit`` and ``cancel`` are called from any
other thread meanwhile, and ``close`` ends it all (no orphan process). The app
turns the callbacks into messages; a script may pass plain functions.
"""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stylelora_tui.compare.session import Item
    from stylelora_tui.generation.client import GenerationClient

FLUSH_S = 0.2  # batches go out at most this often (plus at every line that is not a token)


@dataclass
class Job:
    """One request: ``op`` and its fields; ``item`` is the prompt a ``generate`` fills."""

    number: int
    op: str
    fields: dict[str, Any]
    rid: str | None = None
    cancelled: bool = False
    item: Item | None = None


class GenerationJobs:
    """One generation process for some runs, and the jobs sent to it in order."""

    _numbers = itertools.count(1)

    def __init__(self, run_dirs: list[str | Path]) -> None:
        self.run_dirs = [str(d) for d in run_dirs]
        self.number = next(self._numbers)  # tells this process's messages from an older one's
        self.client: GenerationClient | None = None
        self.ready: dict[str, Any] | None = None
        self.closing = False
        self.active: dict[int, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._job_numbers = itertools.count(1)

    def run(self, on_ready: Callable[[dict[str, Any]], None], on_failed: Callable[[str], None],
            send: Callable[[int, list[dict[str, Any]]], None]) -> None:
        """Start the process and serve the jobs until ``close`` (blocks: run it in a thread)."""
        from stylelora_tui.generation.client import GenerationClient, GenerationProcessError

        client = GenerationClient(self.run_dirs)
        if self.closing:
            return
        self.client = client
        try:
            ready = client.start()
        except (GenerationProcessError, OSError) as exc:
            on_failed(f"The generation process could not start: {exc}")
            return
        if self.closing:
            client.close(timeout=3)
            return
        self.ready = ready
        on_ready(ready)
        try:
            self.serve(client, send)
        except (GenerationProcessError, OSError, ValueError) as exc:
            if not self.closing:
                on_failed(f"The generation process stopped: {exc}")
        finally:
            client.close(timeout=3)

    def serve(self, client: GenerationClient, send: Callable[[int, list[dict[str, Any]]], None]) -> None:
        """Send the queued jobs one at a time until ``close``; hand back their lines in batches.

        Tokens are held for up to ``FLUSH_S`` so a screen redraws a few times a
        second, never once per token; any other line goes at once.
        """
        while (job := self._queue.get()) is not None:
            if job.cancelled:
                send(job.number, [{"finished": True, "cancelled": True}])
                continue
            job.rid = client.request(job.op, **job.fields)
            if job.cancelled:
                client.cancel(job.rid)
            batch: list[dict[str, Any]] = []
            last = time.monotonic()
            for event in client.events(job.rid, timeout=None):
                batch.append(event)
                now = time.monotonic()
                if not ("token" in event and now - last < FLUSH_S):
                    send(job.number, batch)
                    batch, last = [], now

    def submit(self, op: str, fields: dict[str, Any], item: Item | None = None) -> Job | None:
        """Queue a request; None until the process is ready (or after it failed or closed)."""
        if self.ready is None or self.closing:
            return None
        job = Job(next(self._job_numbers), op, {k: v for k, v in fields.items() if v is not None}, item=item)
        self.active[job.number] = job
        self._queue.put(job)
        return job

    def finished(self, job: Job) -> None:
        self.active.pop(job.number, None)

    def cancel(self, job: Job | None) -> None:
        """Stop a job: before it is sent, or in the process while it runs."""
        if job is None or job.number not in self.active:
            return
        job.cancelled = True
        if job.rid and self.client is not None:
            try:
                self.client.cancel(job.rid)
            except Exception:  # noqa: BLE001 - the process is gone: nothing to cancel
                pass

    def failed(self) -> None:
        """The process is gone: no job will be answered."""
        self.ready, self.active = None, {}

    def close(self) -> None:
        """Stop serving and shut the process down (safe to call twice, and before it started)."""
        self.closing = True
        self._queue.put(None)
        client, self.client = self.client, None
        if client is not None:
            client.close(timeout=3)
        self.active = {}
