"""How close generated text is to an author's: a documented stylometric score.

Pure Python (no numpy), so the app and the CLI can score text without the
model stack.

**Burrows's Delta** (Burrows 2002, "Delta: a measure of stylistic difference
and a guide to likely authorship"), as used here:

1. The feature words are the ``top_n`` most frequent words of the author's
   held-out passages (function words dominate them: "the", "and", "you",
   "of"... which is exactly where an author's habits show and topic does not).
2. Every document (each author passage and each generated sample) gets the
   relative frequency of each feature word (count / words in the document).
3. For each word, the mean and standard deviation of those frequencies across
   all the documents give a z-score scale shared by everyone being compared.
4. Each group of texts (the author, the base model, an adapter) is
   concatenated and its relative frequencies turned into z-scores.
5. Delta between a group and the author is the mean absolute difference of
   their z-scores over the feature words. 0 is identical; lower is closer.

Alongside it, two readable figures against the author's: mean sentence length
(words per sentence) and vocabulary richness as MATTR, the moving-average
type-token ratio over a 50-word window (plain TTR falls as texts get longer;
the moving average does not, so short samples and long passages compare).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Mapping, Sequence

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?:\s+|$)")
DEFAULT_TOP_N = 100
MATTR_WINDOW = 50


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, with inner apostrophes: "don't", "keeper's")."""
    return [match.group(0).lower().replace("’", "'") for match in WORD.finditer(text)]


def sentences(text: str) -> list[str]:
    """Sentences split at . ! ? (and closing quotes after them); empty ones dropped."""
    parts = SENTENCE_END.split(text.strip())
    return [part for part in parts if words(part)]


def mean_sentence_length(texts: Iterable[str]) -> float | None:
    """Words per sentence over all the texts (None when there is no sentence)."""
    lengths = [len(words(sentence)) for text in texts for sentence in sentences(text)]
    return sum(lengths) / len(lengths) if lengths else None


def mattr(tokens: Sequence[str], window: int = MATTR_WINDOW) -> float | None:
    """Moving-average type-token ratio; plain TTR for texts shorter than the window."""
    if not tokens:
        return None
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    counts = Counter(tokens[:window])
    total = len(counts)
    for i in range(window, len(tokens)):
        leaving, entering = tokens[i - window], tokens[i]
        counts[leaving] -= 1
        if counts[leaving] == 0:
            del counts[leaving]
        counts[entering] += 1
        total += len(counts)
    return total / (len(tokens) - window + 1) / window


def vocabulary_richness(texts: Iterable[str]) -> float | None:
    """Mean MATTR of the texts, each weighted by its length in words."""
    scored = [(len(tokens), mattr(tokens)) for tokens in (words(text) for text in texts) if tokens]
    total = sum(count for count, _ in scored)
    return sum(count * value for count, value in scored if value is not None) / total if total else None


#: A sample "loops" when some LOOP_WORDS-word sequence comes back LOOP_TIMES times or more.
LOOP_WORDS, LOOP_TIMES = 5, 3


def loops(text: str) -> bool:
    """Whether a text repeats itself ("Not here, sir." twelve times): degeneration, not style."""
    tokens = words(text)
    counts = Counter(tuple(tokens[i : i + LOOP_WORDS]) for i in range(len(tokens) - LOOP_WORDS + 1))
    return bool(counts) and max(counts.values()) >= LOOP_TIMES


def loop_share(texts: Sequence[str]) -> float | None:
    """The share of texts that loop (None for no text)."""
    return sum(loops(text) for text in texts) / len(texts) if texts else None


def feature_words(author_texts: Iterable[str], top_n: int = DEFAULT_TOP_N) -> list[str]:
    """The author's ``top_n`` most frequent words (ties broken alphabetically, so stable)."""
    counts = Counter(word for text in author_texts for word in words(text))
    return [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top_n]]


def _relative_frequencies(tokens: Sequence[str], vocabulary: Sequence[str]) -> list[float]:
    counts = Counter(tokens)
    total = len(tokens) or 1
    return [counts[word] / total for word in vocabulary]


def burrows_delta(
    author_texts: Sequence[str], groups: Mapping[str, Sequence[str]], top_n: int = DEFAULT_TOP_N
) -> tuple[dict[str, float | None], list[str]]:
    """Delta of each group of texts from the author's (lower is closer), and the feature words.

    The z-score scale (mean, standard deviation per word) comes from every
    document of every group and of the author, so all deltas share one scale.
    Words that do not vary across the documents carry no information and are
    left out. A group with no words gets None.
    """
    vocabulary = feature_words(author_texts, top_n)
    documents = [words(text) for text in author_texts] + [words(text) for texts in groups.values() for text in texts]
    documents = [doc for doc in documents if doc]
    if not vocabulary or len(documents) < 2:
        return {name: None for name in groups}, vocabulary
    rows = [_relative_frequencies(doc, vocabulary) for doc in documents]
    means = [sum(column) / len(rows) for column in zip(*rows)]
    stdevs = [math.sqrt(sum((value - mean) ** 2 for value in column) / (len(rows) - 1)) for column, mean in zip(zip(*rows), means)]
    used = [i for i, sd in enumerate(stdevs) if sd > 0]
    if not used:
        return {name: None for name in groups}, vocabulary

    def zscores(texts: Sequence[str]) -> list[float] | None:
        tokens = [word for text in texts for word in words(text)]
        if not tokens:
            return None
        freqs = _relative_frequencies(tokens, vocabulary)
        return [(freqs[i] - means[i]) / stdevs[i] for i in used]

    author_z = zscores(author_texts)
    deltas: dict[str, float | None] = {}
    for name, texts in groups.items():
        z = zscores(texts)
        deltas[name] = None if z is None or author_z is None else sum(abs(a - b) for a, b in zip(z, author_z)) / len(used)
    return deltas, vocabulary


def style_scores(author_texts: Sequence[str], variants: Mapping[str, Sequence[str]], top_n: int = DEFAULT_TOP_N) -> dict:
    """Delta, sentence length and vocabulary richness of each variant, beside the author's."""
    deltas, vocabulary = burrows_delta(author_texts, variants, top_n)
    author = {
        "mean_sentence_length": mean_sentence_length(author_texts),
        "mattr": vocabulary_richness(author_texts),
        "words": sum(len(words(text)) for text in author_texts),
        "texts": len(author_texts),
    }
    scored = {}
    for name, texts in variants.items():
        msl, richness = mean_sentence_length(texts), vocabulary_richness(texts)
        scored[name] = {
            "delta": deltas[name],
            "mean_sentence_length": msl,
            "sentence_length_gap": None if msl is None or author["mean_sentence_length"] is None else abs(msl - author["mean_sentence_length"]),
            "mattr": richness,
            "mattr_gap": None if richness is None or author["mattr"] is None else abs(richness - author["mattr"]),
            "words": sum(len(words(text)) for text in texts),
            "texts": len(texts),
            "loop_share": loop_share(texts),
        }
    return {
        "method": f"Burrows's Delta over the author's {len(vocabulary)} most frequent words (lower is closer); "
        f"MATTR window {MATTR_WINDOW}",
        "feature_words": len(vocabulary),
        "author": author,
        "variants": scored,
    }


def reading(base_delta: float | None, adapted_delta: float | None, adapted_name: str = "adapted") -> tuple[str, float | None]:
    """The one-line verdict and the improvement in percent (positive: the adapter is closer)."""
    if base_delta is None or adapted_delta is None:
        return "not enough text to compare styles (a side produced no words)", None
    if base_delta == 0:
        return f"base already matches the author (Delta 0); {adapted_name} Delta {adapted_delta:.2f}", None
    change = (base_delta - adapted_delta) / base_delta * 100
    figures = f"(Burrows's Delta {adapted_delta:.2f} vs {base_delta:.2f}; lower is closer)"
    if abs(change) < 1:
        return f"{adapted_name} and base are equally close to the author {figures}", change
    if change > 0:
        return f"{adapted_name} is closer to the author than base by {change:.0f}% {figures}", change
    return f"{adapted_name} is further from the author than base by {-change:.0f}% {figures}", change


def style_report(
    author_texts: Sequence[str], base_texts: Sequence[str], adapted_texts: Sequence[str] | Mapping[str, Sequence[str]],
    top_n: int = DEFAULT_TOP_N,
) -> dict:
    """Scores for base and adapted text against the author's, with a one-line reading.

    ``adapted_texts`` is a list of samples, or ``{run name: samples}`` for
    several adapters (the reading then names the closest one).
    """
    adapted = {"adapted": list(adapted_texts)} if not isinstance(adapted_texts, Mapping) else dict(adapted_texts)
    report = style_scores(author_texts, {"base": list(base_texts), **adapted}, top_n)
    candidates = [(v["delta"], name) for name, v in report["variants"].items() if name != "base" and v["delta"] is not None]
    best = min(candidates)[1] if candidates else next(iter(adapted), "adapted")
    line, change = reading(report["variants"]["base"]["delta"], report["variants"].get(best, {}).get("delta"), best)
    report.update(reading=line, improvement_pct=change, best=best)
    return report
