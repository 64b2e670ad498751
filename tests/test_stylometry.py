"""Stylometry on constructed texts whose right ordering is known in advance."""

from __future__ import annotations

import random

import pytest

from stylelora_tui.compare import stylometry as sty

# The author: short second-person sentences, "you", "the", "and".
AUTHOR_SENTENCES = [
    "You wind the lamp and watch the sea.",
    "The gulls cry and you count the ships.",
    "You log the wind. You log the tide.",
    "The fog comes in and you wait.",
    "You light the lamp at dusk and the boats pass.",
    "The brass is cold and you polish it.",
]
# Another voice: long, third-person, subordinate clauses, "which", "of", "is".
OTHER_SENTENCES = [
    "It is a truth of considerable importance which the committee of the society has noted, that the nature of commerce is such that it is rarely understood.",
    "The principle of the matter, which is of some consequence, is that a gentleman of means is obliged to consider the welfare of his dependants.",
    "Whereas it is generally held that the improvement of the estate is of benefit to all, it is by no means certain that this is so.",
]


def compose(sentences: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(sentences) for _ in range(6)) for _ in range(count)]


def mix(seed: int, share_author: float, count: int = 5) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = [rng.choice(AUTHOR_SENTENCES if rng.random() < share_author else OTHER_SENTENCES) for _ in range(8)]
        texts.append(" ".join(parts))
    return texts


def test_words_and_sentences():
    assert sty.words("You don't KNOW the keeper’s 3 cats.") == ["you", "don't", "know", "the", "keeper's", "cats"]
    assert sty.sentences('One two. "Three four!" Five? ') == ["One two", '"Three four', "Five"]
    assert sty.mean_sentence_length(["One two. Three four five six."]) == 3.0
    assert sty.mean_sentence_length(["", "..."]) is None


def test_mattr_ranks_repetitive_text_below_varied_text():
    varied = [f"w{i}" for i in range(200)]
    repetitive = ["the", "sea", "and", "the", "lamp"] * 40
    assert sty.mattr(varied) == 1.0
    assert sty.mattr(repetitive) < 0.1
    assert sty.mattr([]) is None
    # Short texts fall back to plain TTR.
    assert sty.mattr(["a", "b", "a", "b"]) == 0.5


def test_delta_orders_texts_by_how_much_of_the_author_they_contain():
    author = compose(AUTHOR_SENTENCES, 12, seed=1)
    groups = {"close": mix(2, 0.9), "middle": mix(3, 0.5), "far": mix(4, 0.1)}
    deltas, vocabulary = sty.burrows_delta(author, groups, top_n=30)
    assert "you" in vocabulary[:5] and "the" in vocabulary[:5]
    assert deltas["close"] < deltas["middle"] < deltas["far"], deltas
    # The author's own unseen passages are closer than anything else.
    deltas2, _ = sty.burrows_delta(author, {"author2": compose(AUTHOR_SENTENCES, 5, seed=9), **groups}, top_n=30)
    assert deltas2["author2"] == min(deltas2.values())


def test_delta_handles_empty_sides():
    deltas, _ = sty.burrows_delta(["You wind the lamp."] * 3, {"empty": ["", "!!!"], "some": ["the lamp and you"]})
    assert deltas["empty"] is None and deltas["some"] is not None
    deltas, vocabulary = sty.burrows_delta([], {"x": ["text"]})
    assert deltas == {"x": None} and vocabulary == []


def test_style_report_reads_adapted_closer_with_percentage():
    author = compose(AUTHOR_SENTENCES, 10, seed=1)
    base = compose(OTHER_SENTENCES, 5, seed=2)
    adapted = mix(3, 0.85)
    report = sty.style_report(author, base, adapted, top_n=40)
    base_v, adapted_v = report["variants"]["base"], report["variants"]["adapted"]
    assert adapted_v["delta"] < base_v["delta"]
    assert report["improvement_pct"] == pytest.approx((base_v["delta"] - adapted_v["delta"]) / base_v["delta"] * 100)
    assert report["reading"].startswith(f"adapted is closer to the author than base by {report['improvement_pct']:.0f}%")
    # Sentence length: the author writes short sentences, the base long ones.
    assert adapted_v["sentence_length_gap"] < base_v["sentence_length_gap"]
    assert report["author"]["mean_sentence_length"] < 10 < base_v["mean_sentence_length"]
    assert "Burrows's Delta" in report["method"]

    # Swapped, the reading says so.
    worse = sty.style_report(author, adapted, base, top_n=40)
    assert worse["reading"].startswith("adapted is further from the author than base by")
    assert worse["improvement_pct"] < 0


def test_style_report_with_several_runs_names_the_closest():
    author = compose(AUTHOR_SENTENCES, 10, seed=1)
    report = sty.style_report(author, mix(2, 0.1), {"run-a": mix(3, 0.5), "run-b": mix(4, 0.95)}, top_n=40)
    assert report["best"] == "run-b"
    assert report["reading"].startswith("run-b is closer to the author than base")


def test_style_report_without_text_says_so():
    report = sty.style_report(["You wind the lamp."] * 3, [""], [""])
    assert report["improvement_pct"] is None and "not enough text" in report["reading"]


def test_a_sample_that_repeats_a_phrase_loops_and_prose_does_not():
    from stylelora_tui.compare.stylometry import loop_share, loops

    prose = "You climb the stair. The lamp waits at the top, small and plain. Outside the gulls argue over nothing."
    looping = "I said no. " + "Not here, sir, not here. " * 3
    assert not loops(prose) and loops(looping)
    assert loop_share([prose, looping, prose, looping]) == 0.5 and loop_share([]) is None
