"""What the app tests share: waiting, on a Textual Pilot, for something the app does in a worker or a process."""

from __future__ import annotations

import time
from typing import Any, Callable


async def wait_until(pilot, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    """Let the app run until ``predicate()`` holds; fail naming ``what`` (or the predicate) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")
