"""Several authors in one comparison: each side's distance to the author of each adapter (a mix: its sources')."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stylelora_tui import config as config_mod
from stylelora_tui.compare.authors import author_line, authors_of, by_author, only_sides, style_with_authors
from stylelora_tui.compare.html import render
from stylelora_tui.compare.items import saved_style
from stylelora_tui.compare.session import CompareSession
from stylelora_tui.runs.run import Run

# Two voices a reader tells apart at once: a terse second-person logbook, and a chatty first-person kitchen.
LIGHTHOUSE = [
    "You climb the stair. You wind the clockwork. The weight goes up and the lens turns. You write the wind in the log.",
    "The sea is grey at noon. You check the glass. You trim the wick. The gulls sit on the rail and do not move.",
    "At dusk you light the lamp. The beam goes out across the water. You count the ships. There are two. You write them down.",
    "You sleep for four hours. The bell wakes you. You climb again. The wind has turned. You write that it has turned.",
    "The supply boat is late. You eat the last of the bread. You watch the sea. It is flat and grey and it does not change.",
    "You polish the brass. It is Monday. The rag goes black. You polish until the brass shows your face, and then you stop.",
]
KITCHEN = [
    "Honestly, I never meant to bake that much bread, but my grandmother always said that a kitchen with no flour on the floor "
    "is a kitchen nobody loves, and I suppose I believed her, so there I was, elbow-deep in dough at midnight.",
    "I think the trick, and I really do think it is a trick, is that you let the butter get just soft enough, not melted, "
    "because melted butter and I have a history, and it is not a happy one, as my sister would gladly tell you.",
    "We had soup again on Thursday, which nobody minded, because my brother had brought the good onions from the market "
    "and I had saved the rind of the cheese, and honestly what else would you want on a rainy evening like that?",
    "My mother would laugh at me for measuring anything at all, since she never owned a scale and never needed one, "
    "and I suppose I measure because I am afraid, which is a silly thing to be about a cake, but there it is.",
    "I burned the garlic, of course I did, because I was talking to my neighbour about her roses and I forgot, "
    "and the whole flat smelled of it for a day, and I decided that I rather liked it after all.",
    "When the kettle sings I always think of my aunt, who kept three kettles and used only one, and who told me that "
    "you should never trust a person who takes their tea without at least a little bit of sugar in it.",
]


def write_corpus(folder: Path, passages: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "eval.jsonl", "w", encoding="utf-8") as handle:
        for text in passages:
            handle.write(json.dumps({"instruction": "Continue in the author's style:", "input": text[:30], "output": text}) + "\n")
    (folder / "train.jsonl").write_text((folder / "eval.jsonl").read_text())
    return folder


def make_run(root: Path, name: str, corpus: Path) -> Run:
    cfg = config_mod.defaults()
    cfg["data"]["corpus"] = str(corpus)
    config_mod.save(root / "runs" / name / "config.yaml", cfg)
    return Run(root / "runs" / name)


def make_mix(root: Path, name: str, sources: list[Run]) -> Run:
    run = make_run(root, name, Path(sources[0].config()["data"]["corpus"]))  # a mix's config is its first source's
    recipe = {"method": "ties", "sources": [{"name": s.name, "path": str(s.path), "weight": 0.5} for s in sources]}
    (run.path / "mix.json").write_text(json.dumps(recipe))
    return run


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Run]:
    lighthouse = write_corpus(tmp_path / "lighthouse", LIGHTHOUSE)
    kitchen = write_corpus(tmp_path / "kitchen", KITCHEN)
    a, b = make_run(tmp_path, "a", lighthouse), make_run(tmp_path, "b", kitchen)
    return {"a": a, "b": b, "ab": make_mix(tmp_path, "ab", [a, b]), "a2": make_run(tmp_path, "a2", lighthouse)}


def test_each_corpus_is_an_author_and_a_mix_learns_its_sources_authors(runs, tmp_path) -> None:
    authors = authors_of([runs["a"], runs["b"], runs["ab"], runs["a2"]])
    assert [(a.name, a.runs) for a in authors] == [("lighthouse", ("a", "ab", "a2")), ("kitchen", ("b", "ab"))]
    assert authors[0].corpus == (tmp_path / "lighthouse").resolve()
    assert len(authors_of([runs["a"], runs["a2"]])) == 1  # one corpus: one author, no per-author scores

    # Two corpora with the same folder name are told apart by their parent.
    other = write_corpus(tmp_path / "elsewhere" / "lighthouse", LIGHTHOUSE[:3])
    names = [a.name for a in authors_of([runs["a"], make_run(tmp_path, "c", other)])]
    assert names == [f"{tmp_path.name}/lighthouse", "elsewhere/lighthouse"]

    # A mix whose sources are gone counts as its own config's corpus.
    (runs["ab"].path / "mix.json").write_text(json.dumps({"sources": [{"name": "gone", "path": str(tmp_path / "gone")}]}))
    assert [a.runs for a in authors_of([runs["ab"]])] == [("ab",)]


def test_each_side_is_closest_to_the_author_it_writes_like(runs, tmp_path) -> None:
    authors = authors_of([runs["a"], runs["b"]])
    sides = {"base": ["It was a day. Things happened and then other things happened, and people went home."],
             "a": LIGHTHOUSE[:4], "b": KITCHEN[:4]}
    entries = by_author(authors, sides)
    assert [e["author"] for e in entries] == ["lighthouse", "kitchen"]
    assert entries[0]["closest"] == "a" and entries[1]["closest"] == "b"
    assert entries[0]["delta"]["a"] < entries[0]["delta"]["b"] and entries[1]["delta"]["b"] < entries[1]["delta"]["a"]
    assert entries[0]["texts"] == len(LIGHTHOUSE) and entries[0]["runs"] == ["a"]
    line = author_line(entries[1], ["base", "a", "b"])
    assert line.startswith("to kitchen (b): Delta base ") and line.endswith("closest b")
    assert f"b {entries[1]['delta']['b']:.2f}" in line

    # An author whose held-out text is unreadable is named, the others still scored.
    (tmp_path / "kitchen" / "eval.jsonl").write_text("{not json\n")
    entries = by_author(authors, sides)
    assert entries[0]["closest"] == "a" and "eval.jsonl:1: not valid JSON" in entries[1]["error"]
    assert "cannot read its held-out text" in author_line(entries[1], ["base", "a", "b"])


def test_the_session_scores_every_author_and_the_page_and_saved_file_keep_it(runs) -> None:
    session = CompareSession([runs["a"], runs["b"], runs["ab"]], records=[])
    assert [a.name for a in session.authors] == ["lighthouse", "kitchen"]
    report = style_with_authors(LIGHTHOUSE[4:], ["Plain words here, and more plain words."],
                                {"a": LIGHTHOUSE[:3], "b": KITCHEN[:3], "ab": LIGHTHOUSE[:2] + KITCHEN[:1]}, session.authors)
    lighthouse, kitchen = report["by_author"]
    assert lighthouse["closest"] in {"a", "ab"} and kitchen["closest"] in {"b", "ab"}
    assert lighthouse["delta"]["a"] < lighthouse["delta"]["b"] and kitchen["delta"]["b"] < kitchen["delta"]["a"]
    assert "by_author" not in style_with_authors(LIGHTHOUSE[4:], ["Plain words."], {"a": LIGHTHOUSE[:3]}, session.authors[:1])

    # A result kept for fewer sides drops the others' figures and names the closest among those left.
    cut = only_sides(report["by_author"][1], ["base", "a", "ab"])
    assert set(cut["delta"]) == {"base", "a", "ab"} and cut["closest"] in {"a", "ab"}
    assert saved_style({**report, "by_author": [report["by_author"][0], "junk"]})["by_author"] == [report["by_author"][0]]

    page = render({"run": "a, b, ab", "variants": ["base", "a", "b", "ab"], "style": report, "prompts": []})
    assert "<h2>Distance to each author</h2>" in page and ">lighthouse<" in page and ">kitchen<" in page
    closest_to_kitchen = f"<td><b>{report['by_author'][1]['delta']['b']:.3f}</b></td>"
    assert closest_to_kitchen in page
    assert "Distance to each author" not in render({"run": "a", "variants": ["base", "a"], "style": {"reading": "x"}, "prompts": []})
