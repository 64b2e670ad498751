"""Exact and near-duplicate detection for passages.

Exact: identical after whitespace normalisation and case folding (a hash).
Near: Jaccard similarity of word 5-gram sets at or above a threshold.

Comparing every pair is O(n^2), too slow for a 10 MB input (tens of thousands of
passages). Instead each passage is indexed under its ``SKETCH_SIZE`` smallest
shingle hashes (a bottom-k MinHash sketch): two sets with Jaccard J share one of
those with probability about 1 - (1 - J)^k (> 0.999 for J = 0.9, k = 8), and
only such candidate pairs have their exact Jaccard computed. Buckets are capped
so that a shingle common to thousands of passages cannot bring back O(n^2).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass

SHINGLE_WORDS = 5
SKETCH_SIZE = 8
MAX_BUCKET = 64  # candidates compared per shared sketch hash, newest first

_WORD = re.compile(r"\w+")


def normalised_key(text: str) -> str:
    """Hex digest of the text with whitespace collapsed and case folded."""
    return hashlib.sha1(" ".join(text.casefold().split()).encode("utf-8")).hexdigest()


def shingles(text: str) -> frozenset[int]:
    """Hashes of the word 5-grams of ``text`` (punctuation and case ignored)."""
    # Words are hashed with crc32, not hash(): str hashes are salted per process
    # and the same input must give the same corpus on every run. Tuples of ints
    # hash deterministically, and map/zip keep the whole loop in C.
    words = _WORD.findall(text.casefold())
    ids = list(map(zlib.crc32, map(str.encode, words)))
    if len(ids) < SHINGLE_WORDS:
        return frozenset([hash(tuple(ids))])
    return frozenset(map(hash, zip(*(ids[i:] for i in range(SHINGLE_WORDS)))))


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass
class Duplicate:
    index: int  # the dropped passage
    kept_index: int  # the earlier passage it duplicates
    kind: str  # "exact" or "near"
    similarity: float


def find_duplicates(texts: list[str], threshold: float) -> list[Duplicate]:
    """Passages to drop: each duplicates an earlier passage that is kept.

    ``threshold`` > 1 disables near-duplicate detection (exact still runs).
    """
    duplicates: list[Duplicate] = []
    first_by_key: dict[str, int] = {}
    buckets: dict[int, list[int]] = {}
    kept_shingles: dict[int, frozenset[int]] = {}
    for index, text in enumerate(texts):
        key = normalised_key(text)
        if key in first_by_key:
            duplicates.append(Duplicate(index, first_by_key[key], "exact", 1.0))
            continue
        first_by_key[key] = index
        if threshold > 1.0:
            continue
        own = shingles(text)
        sketch = sorted(own)[:SKETCH_SIZE]
        best: tuple[float, int] | None = None
        seen: set[int] = set()
        for h in sketch:
            for other in reversed(buckets.get(h, ())[-MAX_BUCKET:]):
                if other in seen:
                    continue
                seen.add(other)
                similarity = jaccard(own, kept_shingles[other])
                if similarity >= threshold and (best is None or similarity > best[0]):
                    best = (similarity, other)
        if best is not None:
            duplicates.append(Duplicate(index, best[1], "near", round(best[0], 4)))
            continue
        kept_shingles[index] = own
        for h in sketch:
            buckets.setdefault(h, []).append(index)
    return duplicates
