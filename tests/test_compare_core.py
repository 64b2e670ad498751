"""The compare core without Textual: a script builds a comparison with the code the app uses.

The slow tests drive a real generation process on the tiny trained run; the
others check that the sampling defaults and limits are one definition, and
that the corpus preview renders a record exactly as training does.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import textwrap
import threading

import pytest

from conftest import REPO, cli_env
from stylelora_tui.compare.session import CompareSession, parse_settings
from stylelora_tui.generation.protocol import SAMPLING_DEFAULTS, GenerationError, sampling_from

GREEDY = {"temperature": 0.0, "max_new_tokens": 8, "n": 2, "seed": 3}


# --------------------------------------------------------------------------- one definition


def test_sampling_defaults_are_defined_once() -> None:
    from stylelora_tui.cli.compare import add_arguments
    from stylelora_tui.generation.client import GenerationClient

    parser = argparse.ArgumentParser()
    add_arguments(parser, "compare")
    args = parser.parse_args(["some-run"])
    cli = {"n": args.samples, "seed": args.seed, "temperature": args.temperature, "top_p": args.top_p,
           "max_new_tokens": args.max_new_tokens, "repetition_penalty": args.repetition_penalty}
    assert cli == SAMPLING_DEFAULTS  # the CLI said 150 new tokens where the app said 200
    assert CompareSession([]).settings == SAMPLING_DEFAULTS  # the app's Compare section
    assert sampling_from({}) == SAMPLING_DEFAULTS  # the generation process
    client = {name: p.default for name, p in inspect.signature(GenerationClient.generate).parameters.items()
              if name in SAMPLING_DEFAULTS}
    assert client == SAMPLING_DEFAULTS


def test_the_form_and_the_process_refuse_the_same_settings() -> None:
    for bad in ({"n": "0"}, {"n": "101"}, {"top_p": "0"}, {"temperature": "-1"}, {"max_new_tokens": "0"}):
        values = {k: str(v) for k, v in {**SAMPLING_DEFAULTS, **bad}.items()}
        settings, problem = parse_settings(values, SAMPLING_DEFAULTS)
        assert settings is None and problem
        with pytest.raises(GenerationError) as raised:
            sampling_from(values)
        assert str(raised.value) == problem
    settings, problem = parse_settings({"n": "3", "temperature": "0"}, SAMPLING_DEFAULTS)
    assert problem == "" and settings == {**SAMPLING_DEFAULTS, "n": 3, "temperature": 0.0}
    assert parse_settings({"n": "two"}, SAMPLING_DEFAULTS)[1].endswith("not a whole number")


def test_default_instruction_is_the_corpus_default() -> None:
    from stylelora_tui.corpus.records import PrepareOptions
    from stylelora_tui.prompting import DEFAULT_INSTRUCTION

    assert PrepareOptions().instruction == DEFAULT_INSTRUCTION


def test_corpus_preview_renders_what_training_sees(tiny_model) -> None:
    """The preview (jinja2 only) equals the trainer's prompt + completion through the real tokenizer."""
    from transformers import AutoTokenizer

    from stylelora_tui.prompting import chat_renderer, completion_text, render_prompt

    render, note = chat_renderer(str(tiny_model))
    assert render is not None, note
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    record = {"instruction": "Continue:", "input": "The sea  ", "output": " was grey. "}
    assert render(record) == render_prompt(tokenizer, record) + completion_text(tokenizer, record)
    assert render(record).endswith("was grey.<|im_end|>")


# --------------------------------------------------------------------------- against a real run


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model):
    from trained_run import trained_run

    return trained_run(tmp_path_factory, tiny_model)


NOTEBOOK = """
    import json, sys
    from stylelora_tui.compare.publish import load_compare_json, save_compare_json, write_page
    from stylelora_tui.compare.session import CompareSession
    from stylelora_tui.generation.client import GenerationClient
    from stylelora_tui.runs.run import Run

    run = Run(sys.argv[1])
    session = CompareSession.for_runs([run], settings=json.loads(sys.argv[2]))
    with GenerationClient([run.path]) as client:
        session.set_ready(client.start(timeout=180))
        for index in (0, 1):
            item = session.start(session.records[index], session.record_label(index))
            for line in client.events(client.request("generate", **session.request_fields(item))):
                assert not session.take(item, [line]), line
            session.finish(item, cancelled=False)
        session.take_losses(client.collect(client.eval_loss()))
    session.score()
    result = session.result()
    save_compare_json(result, [run])
    write_page(sys.argv[3], result, run)
    print(json.dumps({"result": result, "saved": load_compare_json(run), "rows": session.score_rows(),
                      "textual": sorted(m for m in sys.modules if m.split(".")[0] == "textual")}))
"""


@pytest.mark.slow
def test_a_script_builds_the_compare_the_cli_builds(run, tmp_path) -> None:
    from stylelora_tui.compare.build import compare

    page = tmp_path / "page.html"
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(NOTEBOOK), str(run.path), json.dumps(GREEDY), str(page)],
                         capture_output=True, text=True, timeout=300, env=cli_env(), cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["textual"] == []  # the app's compare code, without the app
    result = got["result"]
    assert result["variants"] == ["base", run.name] and len(result["prompts"]) == 2
    assert result["settings"] == {"samples": 2, "seed": 3, "temperature": 0.0, "top_p": 0.9, "max_new_tokens": 8,
                                  "repetition_penalty": SAMPLING_DEFAULTS["repetition_penalty"]}
    assert [s["seed"] for s in result["prompts"][0]["samples"][run.name]] == [3, 4]
    assert result["eval_loss"][run.name]["eval_loss"] < result["eval_loss"]["base"]["eval_loss"]
    assert result["style"]["reading"] and [row[0] for row in got["rows"]] == ["author", "base", run.name]
    assert got["saved"]["prompts"] == result["prompts"] and page.exists()

    # The CLI's one-go build goes through the same session: greedy samples agree word for word.
    progress: list[str] = []
    built = compare(run, prompts=2, settings=GREEDY, progress=progress.append)
    assert built["prompts"][0]["samples"] == result["prompts"][0]["samples"]
    assert built["settings"] == result["settings"]
    assert built["eval_loss"][run.name]["eval_loss"] == pytest.approx(result["eval_loss"][run.name]["eval_loss"], rel=1e-5)
    assert progress[0].startswith("loading the model") and any("sample 2/2" in line for line in progress)


@pytest.mark.slow
def test_generation_jobs_stream_in_batches_cancel_and_close(run) -> None:
    """The thread driver the app wraps in a worker: ready, batches, cancel, failure-free close, no orphan."""
    from stylelora_tui.compare.jobs import GenerationJobs

    jobs = GenerationJobs([run.path])
    session = CompareSession.for_runs([run], settings={**GREEDY, "n": 1})
    ready, failed, batches = threading.Event(), [], []
    done = threading.Event()

    def send(number: int, batch: list[dict]) -> None:
        batches.append((number, batch))
        if any(line.get("finished") for line in batch):
            done.set()

    thread = threading.Thread(target=jobs.run, args=(lambda _r: ready.set(), failed.append, send), daemon=True)
    assert jobs.submit("generate", {}) is None  # nothing is queued before the process is ready
    thread.start()
    assert ready.wait(180), failed
    session.set_ready(jobs.ready)
    item = session.start(session.records[0], session.record_label(0))
    job = jobs.submit("generate", session.request_fields(item), item)
    assert done.wait(120)
    for number, batch in batches:
        assert number == job.number
        session.take(item, batch)
    assert all(s.done and s.text for samples in item.samples.values() for s in samples)

    # A long request, cancelled once it streams.
    done.clear()
    batches.clear()
    long = jobs.submit("generate", {"prompt": "You wind the lamp", "variants": ["base"], "n": 5, "temperature": 1.0,
                                    "max_new_tokens": 400})
    while not batches:
        threading.Event().wait(0.05)
    jobs.cancel(long)
    assert done.wait(120)
    assert batches[-1][1][-1] == {"id": long.rid, "finished": True, "cancelled": True}

    process = jobs.client.process
    jobs.close()
    thread.join(30)
    assert not thread.is_alive() and process.poll() is not None and failed == []


# --------------------------------------------------------------------------- a saved comparison, opened again


def saved_run(tmp_path, name: str = "styled"):
    """A run folder (config and held-out corpus, no model needed) to save a comparison in."""
    from conftest import write_corpus

    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.run import Run

    cfg = config_mod.defaults()
    cfg["data"]["corpus"] = str(write_corpus(tmp_path / "corpus"))
    folder = tmp_path / "runs" / name
    folder.mkdir(parents=True)
    config_mod.save(folder / "config.yaml", cfg)
    return Run(folder)


def streamed_result(run) -> dict:
    """A compare result made the way the app makes one: protocol lines fed to a session, then ``result()``."""
    session = CompareSession.for_runs([run], settings=GREEDY)
    session.set_ready({"variants": ["base", run.name], "model": "/models/tiny", "device": "cpu"})
    for index in (0, 2):
        item = session.start(session.records[index], session.record_label(index))
        for variant in session.variants:
            for i in range(2):
                line = {"variant": variant, "sample": i, "seed": 3 + i}
                session.take(item, [{**line, "token": "The "}, {**line, "done": True, "text": f"The {variant} wrote {index}.{i}.",
                                                               "tokens": 4, "stopped": "eos"}])
        session.finish(item, cancelled=False)
    session.take_losses([{"variant": "base", "eval_loss": 3.5, "perplexity": 33.1, "tokens": 90},
                         {"variant": run.name, "eval_loss": 3.2, "perplexity": 24.5, "tokens": 90}])
    session.take_losses([{"split": "general", "variant": "base", "eval_loss": 3.0, "perplexity": 20.1, "tokens": 400},
                         {"split": "general", "variant": run.name, "eval_loss": 3.3, "perplexity": 27.1, "tokens": 400}])
    session.score()
    return session.result()


def test_a_saved_comparison_opens_as_it_was_saved(tmp_path) -> None:
    from stylelora_tui.compare.publish import open_session, save_compare_json

    run = saved_run(tmp_path)
    result = streamed_result(run)
    save_compare_json(result, [run])
    session, notes = open_session([run], dict(SAMPLING_DEFAULTS))
    assert notes == [] and session.saved == {"created": result["created"], "model": "/models/tiny", "device": "cpu"}
    assert session.ready is None and session.pending is None  # nothing asks for a generation process
    assert session.settings == {**SAMPLING_DEFAULTS, **GREEDY}  # settings nobody chose are the file's
    assert [item.label for item in session.items] == ["held-out 1/4", "held-out 3/4"] and session.current is session.items[0]
    assert [s.text for s in session.current.samples[run.name]] == ["The styled wrote 0.0.", "The styled wrote 0.1."]
    assert all(item.finished and item.saved for item in session.items)
    assert session.losses[run.name]["eval_loss"] == 3.2 and session.loss_requested
    assert session.style == result["style"] and session.score_rows()[2][5] == "3.200"
    # The forgetting check: the held-out losses stay the author's; general English has its own column and report.
    assert session.losses["base"]["eval_loss"] == 3.5 and session.score_rows()[2][6] == "3.300"
    forgetting = result["forgetting"]["variants"][run.name]
    assert forgetting["change"] == pytest.approx(0.1) and forgetting["flagged"]  # +10% is over the 5% threshold
    assert forgetting["held_out_change"] == pytest.approx(3.2 / 3.5 - 1)
    assert session.forgetting() == result["forgetting"]
    assert session.prompt_choices()[2][1].startswith("3. (saved) ") and "(saved)" not in session.prompt_choices()[1][1]
    assert session.show_saved(session.records[2]) and session.current is session.items[1]
    assert not session.show_saved(session.records[1])
    again = session.result()  # exported again: the same prompts, samples, scores, model
    assert again["prompts"] == result["prompts"] and again["style"] == result["style"] and again["model"] == "/models/tiny"

    # Regenerating the shown prompt asks for new seeds, and replaces the saved item.
    session.next_seeds()
    item = session.start(session.current.record, session.current.label)
    assert [s.seed for s in item.samples["base"]] == [5, 6] and len(session.items) == 2 and not item.saved


def test_a_saved_comparison_that_does_not_fit_is_set_aside_with_a_note(tmp_path) -> None:
    import os

    from stylelora_tui.compare.publish import open_session, save_compare_json

    run = saved_run(tmp_path)
    save_compare_json(streamed_result(run), [run])
    path = run.path / "compare.json"

    session, notes = open_session([run], {**GREEDY, "n": 1}, chosen=True)  # settings the user chose
    assert session.saved is None and session.items == [] and session.settings["n"] == 1 and len(session.records) == 4
    penalty = f", repetition penalty {SAMPLING_DEFAULTS['repetition_penalty']}"  # named when it is not 1 (none)
    said = (f"Saved comparison {path} set aside: it was made with T 0.0, top-p 0.9, max 8, n 2, seed 3{penalty}, "
            f"not T 0.0, top-p 0.9, max 8, n 1, seed 3{penalty}; generating afresh")
    assert notes == [(said, "information")]
    assert open_session([run], dict(GREEDY), chosen=True).session.saved is not None  # the same settings: shown

    other = saved_run(tmp_path / "b", name="other")
    session, notes = open_session([run, other], dict(GREEDY))
    assert session.saved is None and session.variants == ["base", "styled", "other"]
    assert notes[0][0].startswith(f"{path} holds the base against styled only")

    run.adapter_dir.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (run.adapter_dir / name).write_text("{}")
    later = path.stat().st_mtime + 60
    os.utime(run.adapter_dir / "adapter_model.safetensors", (later, later))  # trained on after the comparison
    session, notes = open_session([run], dict(GREEDY))
    assert session.saved is None and "is older than styled's adapter" in notes[0][0]


@pytest.mark.parametrize("text, why", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"created": "2026-01-01 10:00", "settings": {}, "variants": ["base", "styled"]}', "missing key 'prompts'"),
    (None, "bad 'settings'"),
    ("", "prompt 1 is incomplete"),
])
def test_a_damaged_saved_comparison_is_named_and_set_aside(tmp_path, text, why) -> None:
    from stylelora_tui.compare.publish import open_session

    run = saved_run(tmp_path)
    result = streamed_result(run)
    if text is None:
        result["settings"].pop("top_p")
    elif text == "":
        del result["prompts"][0]["samples"]["base"][1]["text"]
    path = run.path / "compare.json"
    path.write_text(json.dumps(result) if text in (None, "") else text, encoding="utf-8")
    session, notes = open_session([run], dict(SAMPLING_DEFAULTS))
    assert session.saved is None and session.items == [] and len(session.records) == 4  # generated afresh
    assert len(notes) == 1 and notes[0][1] == "warning"
    assert notes[0][0].startswith(f"{path} is damaged (") and why in notes[0][0] and "Traceback" not in notes[0][0]


def test_a_hand_edited_saved_comparison_with_odd_scores_still_shows(tmp_path) -> None:
    from stylelora_tui.compare.publish import open_session

    run = saved_run(tmp_path)
    result = streamed_result(run)
    result["style"] = {"reading": 3, "author": "x", "variants": {"base": [1], run.name: {"delta": "far"}}}
    result["eval_loss"] = {"base": 3.5, run.name: {"eval_loss": "low", "perplexity": 20.0}}
    result["general_loss"] = {"base": "x", run.name: {"eval_loss": 3.25}}
    result["forgetting"] = {"source": 7, "variants": {run.name: {"change": "big", "flagged": True}}}
    (run.path / "compare.json").write_text(json.dumps(result), encoding="utf-8")
    session, notes = open_session([run], dict(SAMPLING_DEFAULTS))
    assert notes == [] and session.style["reading"] == "3"
    assert session.score_rows() == [("author", "0", "-", "-", "", "", ""), ("base", "-", "-", "-", "-", "-", "-"),
                                    ("styled", "-", "-", "-", "-", "-", "3.250")]
    assert session.forgetting() is None  # no base loss on general text to compare with
    from stylelora_tui.compare.forgetting import forgetting_line
    assert forgetting_line(result["forgetting"], run.name) == ""  # junk figures: nothing said rather than something wrong
