"""The generation process on a tiny model trained through the real trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stylelora_tui.generation.client import GenerationClient, GenerationProcessError, samples_by_variant
from stylelora_tui.generation.protocol import SAMPLING_DEFAULTS
from stylelora_tui.prompting import read_jsonl, render_prompt
from trained_run import trained_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model):
    return trained_run(tmp_path_factory, tiny_model)


@pytest.fixture(scope="module")
def client(run):
    with GenerationClient([run.path]) as client:
        client.start(timeout=180)
        yield client


@pytest.fixture(scope="module")
def record(run):
    return read_jsonl(Path(run.config()["data"]["corpus"]) / "eval.jsonl")[0]


def plain_generate(model_dir: Path, adapter_dir: Path, record: dict, *, adapter: bool, seed: int | None = None,
                   dtype: str = "float32", **kwargs) -> str:
    """What plain transformers (+ PEFT) makes of the same rendered prompt, in the same dtype: the reproduction recipe."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    inputs = tokenizer(render_prompt(tokenizer, record), return_tensors="pt", add_special_tokens=False)
    if seed is not None:
        torch.manual_seed(seed)
    kwargs.setdefault("repetition_penalty", SAMPLING_DEFAULTS["repetition_penalty"])  # what the process applies by default
    output = model.generate(**inputs, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **kwargs)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_ready_line_names_the_variants_and_stop_tokens(client, run):
    ready = client.ready
    assert ready["variants"] == ["base", run.name]
    from stylelora_tui.training.backends import device_description

    assert ready["device"] == device_description()  # described as the trainer describes it
    from stylelora_tui.training.backends import cpu_bf16_supported

    # bfloat16 where the CPU has it natively, as training's "auto" (the test machines do).
    assert ready["device"].startswith("cpu") and ready["dtype"] == ("bfloat16" if cpu_bf16_supported() else "float32")
    assert ready["pad_token_id"] not in ready["eos_token_ids"]
    assert ready["warnings"] == []


def test_greedy_streams_tokens_and_base_matches_plain_transformers(client, run, record, tiny_model):
    rid = client.generate(record=record, n=1, temperature=0, max_new_tokens=24)
    events = client.collect(rid, timeout=120)
    assert events[-1] == {"id": rid, "finished": True, "cancelled": False}
    assert not [e for e in events if "error" in e]
    samples = samples_by_variant(events)
    assert set(samples) == {"base", run.name}
    for variant, (done,) in samples.items():
        streamed = "".join(e["token"] for e in events if e.get("variant") == variant and "token" in e)
        assert streamed == done["text"] and done["seed"] == 0 and done["sample"] == 0
        assert done["stopped"] in ("eos", "length") and 0 < done["tokens"] <= 24
    # Token lines come before their done line.
    first_done = next(i for i, e in enumerate(events) if e.get("done"))
    assert any("token" in e for e in events[:first_done])

    base_text = samples["base"][0]["text"]
    assert base_text == plain_generate(tiny_model, run.adapter_dir, record, adapter=False, dtype=client.ready["dtype"], do_sample=False, max_new_tokens=24)
    adapted_text = samples[run.name][0]["text"]
    assert adapted_text == plain_generate(tiny_model, run.adapter_dir, record, adapter=True, dtype=client.ready["dtype"], do_sample=False, max_new_tokens=24)
    assert adapted_text != base_text


def test_every_sample_records_a_seed_that_reproduces_it(client, run, record, tiny_model):
    settings = dict(temperature=1.0, top_p=0.95, max_new_tokens=16)
    first = samples_by_variant(client.collect(client.generate(record=record, n=3, seed=40, **settings)))
    assert [s["seed"] for s in first["base"]] == [40, 41, 42]
    assert len({s["text"] for s in first["base"]}) > 1  # different seeds, different samples
    again = samples_by_variant(client.collect(client.generate(record=record, n=1, seed=42, **settings)))
    assert again["base"][0]["text"] == first["base"][2]["text"]
    assert again[run.name][0]["text"] == first[run.name][2]["text"]
    # ... and plain transformers reproduces it from the seed alone, one row with the sample's own generator.
    from stylelora_tui.generation.sampling import SeededSampler

    sampler = SeededSampler([42], settings["temperature"], settings["top_p"])
    plain = plain_generate(tiny_model, run.adapter_dir, record, adapter=False, dtype=client.ready["dtype"], do_sample=False,
                           logits_processor=[sampler], max_new_tokens=settings["max_new_tokens"])
    assert plain == first["base"][2]["text"]


def test_all_samples_of_a_prompt_stream_together_from_one_batched_call(client, run, record):
    events = client.collect(client.generate(record=record, n=4, seed=7, temperature=1.0, top_p=1.0, max_new_tokens=20))
    samples = samples_by_variant(events)
    for variant in ("base", run.name):
        assert [s["sample"] for s in samples[variant]] == [0, 1, 2, 3]
        for s in samples[variant]:  # every sample's streamed pieces add up to its text
            streamed = "".join(e["token"] for e in events
                               if e.get("variant") == variant and e.get("sample") == s["sample"] and "token" in e)
            assert streamed == s["text"] and s["tokens"] <= 20
    # The samples of a variant arrive interleaved (one batch), not one after another.
    order = [e["sample"] for e in events if e.get("variant") == "base" and "token" in e]
    first_of = {i: order.index(i) for i in range(4) if i in order}
    last_of = {i: len(order) - 1 - order[::-1].index(i) for i in first_of}
    assert any(first_of[j] < last_of[i] for i in first_of for j in first_of if j > i), order


def test_a_typed_prompt_uses_the_training_instruction(client):
    events = client.collect(client.generate(prompt="Fog comes in", variants=["base"], n=1, temperature=0, max_new_tokens=4))
    assert [e["variant"] for e in events if e.get("done")] == ["base"]


def test_cancel_stops_a_request_mid_sample(client):
    rid = client.generate(prompt="You wind the lamp", variants=["base"], n=5, temperature=1.0, max_new_tokens=600)
    events = []
    for event in client.events(rid, timeout=120):
        events.append(event)
        if len(events) == 3:
            client.cancel(rid)
    done = [e for e in events if e.get("done")]
    assert events[-1]["finished"] and events[-1]["cancelled"]
    # The five samples run as one batch: the ones still going end "cancelled", mid-sample.
    stops = [e["stopped"] for e in done]
    assert "cancelled" in stops and set(stops) <= {"eos", "cancelled"}, stops
    assert all(e["tokens"] < 600 for e in done if e["stopped"] == "cancelled")
    # The process goes on serving.
    after = client.collect(client.generate(prompt="Fog", variants=["base"], n=1, temperature=0, max_new_tokens=3))
    assert after[-1]["cancelled"] is False and any(e.get("done") for e in after)


def test_bad_requests_get_error_lines_and_the_process_survives(client):
    events = client.collect(client.generate(prompt="x", variants=["nope"], n=1))
    assert "unknown variant 'nope'" in events[0]["error"] and events[-1]["finished"]
    events = client.collect(client.request("frobnicate"))
    assert "unknown op 'frobnicate'" in events[0]["error"]
    events = client.collect(client.generate(prompt="x", n=0))
    assert "1 <= n <= 100" in events[0]["error"]
    client.process.stdin.write("this is not json\n")
    client.process.stdin.flush()
    rid = client.generate(prompt="Fog", variants=["base"], n=1, temperature=0, max_new_tokens=2)
    events = client.collect(rid)
    assert any("one JSON object per line" in e.get("error", "") for e in events)
    assert any(e.get("done") for e in events)


def test_eval_loss_is_lower_with_the_adapter(client, run):
    events = client.collect(client.eval_loss())
    losses = {e["variant"]: e for e in events if "eval_loss" in e}
    assert set(losses) == {"base", run.name}
    assert losses[run.name]["eval_loss"] < losses["base"]["eval_loss"]
    assert losses["base"]["records"] == 4 and losses["base"]["tokens"] > 0
    assert losses[run.name]["perplexity"] == pytest.approx(__import__("math").exp(losses[run.name]["eval_loss"]))


def test_general_text_is_scored_as_plain_text_on_every_token(client, run, tiny_model):
    """The forgetting check's request: every token of each passage scored (whatever the run's format), tagged
    ``general``, and the base's loss is what plain transformers computes in the same dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from stylelora_tui.compare.forgetting import GENERAL_SPLIT, general_records
    from stylelora_tui.prompting import bos_prefix

    records = general_records()[:2]
    events = client.collect(client.eval_loss(records=records, data_format="raw_text", split=GENERAL_SPLIT))
    losses = {e["variant"]: e for e in events if "eval_loss" in e}
    assert set(losses) == {"base", run.name} and {e["split"] for e in losses.values()} == {"general"}
    tokenizer = AutoTokenizer.from_pretrained(run.adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=getattr(torch, client.ready["dtype"]))
    window = int(run.config()["model"]["max_seq_length"])
    total = tokens = 0.0
    with torch.no_grad():
        for record in records:
            text = tokenizer(bos_prefix(tokenizer) + record["output"] + tokenizer.eos_token, add_special_tokens=False,
                             return_tensors="pt").input_ids
            assert text.shape[1] > window  # so the windows are tested too
            for start in range(0, text.shape[1], window):  # longer than max_seq_length: scored in windows, not cut
                ids = text[:, start : start + window]
                total += model(input_ids=ids, labels=ids).loss.item() * (ids.shape[1] - 1)
                tokens += ids.shape[1] - 1
    assert losses["base"]["tokens"] == tokens
    assert losses["base"]["eval_loss"] == pytest.approx(total / tokens, rel=1e-2)
    assert losses[run.name]["eval_loss"] != losses["base"]["eval_loss"]
    bad = client.collect(client.eval_loss(records=records, data_format="chat"))
    assert any("unknown data_format 'chat'" in e.get("error", "") for e in bad)


def test_a_folder_that_is_not_a_run_fails_clearly(tmp_path):
    with pytest.raises(GenerationProcessError, match="is not a run directory"):
        GenerationClient([tmp_path]).start(timeout=60)


def test_protocol_lines_are_json_only(run):
    """Library chatter never reaches stdout: every stdout line parses."""
    import subprocess
    import sys

    request = json.dumps({"id": 1, "op": "generate", "prompt": "Fog", "variants": ["base"], "n": 1, "temperature": 0, "max_new_tokens": 2})
    out = subprocess.run([sys.executable, "-m", "stylelora_tui.generation.server", str(run.path)], input=request + "\n",
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["ready"] and lines[-1]["finished"]
