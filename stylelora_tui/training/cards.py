"""GPU cards a run may be sized for, and whether an estimate fits each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

GiB = 1024**3



@dataclass(frozen=True)
class Card:
    name: str
    #: Memory the driver reports (``torch.cuda.get_device_properties().total_memory``).
    usable_bytes: int


#: Usable memory as torch reports it, not the marketing figure.
CARDS: tuple[Card, ...] = (
    Card("T4 16 GB", int(14.75 * GiB)),
    Card("L4 24 GB", int(22.05 * GiB)),
    Card("A100 40 GB", int(39.39 * GiB)),
    Card("A100 80 GB", int(79.15 * GiB)),
    Card("H100 80 GB", int(79.10 * GiB)),
    Card("H200 141 GB", int(139.7 * GiB)),
)

#: Above this share of a card's memory the verdict is "tight": the estimate's
#: own error (about +-25 %) could cross the limit.
TIGHT_SHARE = 0.80


def verdicts(estimate: Any, cards: Iterable[Card] = CARDS) -> list[tuple[str, str, int]]:
    """``[(card, "fits" | "tight" | "won't fit", headroom_bytes), ...]`` for a ``MemoryEstimate``.

    Headroom is negative when it won't fit.
    """
    out = []
    total = estimate.total
    for card in cards:
        headroom = card.usable_bytes - total
        if headroom < 0:
            verdict = "won't fit"
        elif total > TIGHT_SHARE * card.usable_bytes:
            verdict = "tight"
        else:
            verdict = "fits"
        out.append((card.name, verdict, headroom))
    return out
