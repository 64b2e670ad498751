"""Live samples during training: sampled (not greedy), with a fixed seed, leaving training's randomness alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import SENTENCES
from stylelora_tui.generation.protocol import SAMPLING_DEFAULTS
from stylelora_tui.training.callbacks import LiveSampler

RECORD = {"instruction": "Continue in the author's style:", "input": SENTENCES[0], "output": SENTENCES[1], "id": "p1"}


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return SimpleNamespace(model=AutoModelForCausalLM.from_pretrained(tiny_model),
                           tokenizer=AutoTokenizer.from_pretrained(tiny_model))


def test_a_sample_point_is_sampled_with_a_fixed_seed(loaded) -> None:
    import torch

    sampler = LiveSampler(loaded, RECORD, 24, seed=3407)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    first = sampler.sample()
    # The trainer's random state is untouched: dropout and shuffling go on as without samples.
    assert torch.equal(torch.get_rng_state(), before)
    again = sampler.sample()
    assert first["text"] == again["text"]  # the same seed at every sample point: comparable across steps
    assert (first["seed"], first["temperature"], first["top_p"]) == (
        3407, SAMPLING_DEFAULTS["temperature"], SAMPLING_DEFAULTS["top_p"])
    assert first["prompt"] == RECORD["input"] and first["reference"] == RECORD["output"]
    # The very draw compare makes from that seed (generation.sampling), not another sampler.
    from transformers import LogitsProcessorList

    from stylelora_tui.generation.sampling import SeededSampler
    from stylelora_tui.prompting import render_prompt

    inputs = loaded.tokenizer(render_prompt(loaded.tokenizer, RECORD), add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        output = loaded.model.generate(
            **inputs, max_new_tokens=24, do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id,
            eos_token_id=loaded.tokenizer.eos_token_id, repetition_penalty=first["repetition_penalty"],
            logits_processor=LogitsProcessorList([SeededSampler([3407], first["temperature"], first["top_p"])]))
    compare_text = loaded.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert first["text"] == compare_text

    # Sampled, not greedy: other seeds give other continuations on this near-uniform random model.
    others = {LiveSampler(loaded, RECORD, 24, seed=seed).sample()["text"] for seed in range(4)}
    assert len(others | {first["text"]}) > 2
    greedy = LiveSampler(loaded, RECORD, 24, seed=3407, temperature=0.0).sample()
    assert greedy["text"] == LiveSampler(loaded, RECORD, 24, seed=99, temperature=0.0).sample()["text"]


def test_the_model_goes_back_to_training_mode(loaded) -> None:
    loaded.model.train()
    LiveSampler(loaded, RECORD, 4, seed=0).sample()
    assert loaded.model.training
    loaded.model.eval()
    LiveSampler(loaded, RECORD, 4, seed=0).sample()
    assert not loaded.model.training


def test_a_sample_is_scored_with_compare_s_style_distance(loaded) -> None:
    from stylelora_tui.compare.stylometry import burrows_delta

    authors = [" ".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(1, 5)]
    sample = LiveSampler(loaded, RECORD, 24, seed=1, author_texts=authors).sample()
    deltas, _ = burrows_delta(authors, {"sample": [sample["text"]], "reference": [RECORD["output"]]})
    # Compare's distance, the sample and the author's own continuation on one scale.
    assert sample["style_distance"] == deltas["sample"] and sample["reference_style_distance"] == deltas["reference"]
    assert sample["style_distance"] > 0
    unscored = LiveSampler(loaded, RECORD, 4, seed=1).sample()
    assert unscored["style_distance"] is None and unscored["reference_style_distance"] is None


def test_the_style_series_follows_the_replay_rule(tmp_path) -> None:
    from stylelora_tui.runs.events import sample_history
    from stylelora_tui.runs.run import Run
    from stylelora_tui.runs.run_state import RunState

    events = [
        {"type": "sample", "step": 5, "style_distance": 0.9},
        {"type": "sample", "step": 10, "style_distance": 0.8},
        {"type": "resume", "from_step": 5},  # step 10 was undone
        {"type": "sample", "step": 10, "style_distance": 0.6},
        {"type": "sample", "step": 15, "style_distance": None},  # an empty sample has no distance
        {"type": "sample", "step": 20, "style_distance": 0.5},
    ]
    run = Run(tmp_path / "run")
    state = RunState(run=run, tail=run.tail())
    state.apply(events)
    view = state.view("run")
    assert (view.style_steps, view.style_distances) == ([5, 10, 20], [0.9, 0.6, 0.5])
    replayed = [(e["step"], e["style_distance"]) for e in sample_history(events) if e["style_distance"] is not None]
    assert replayed == list(zip(view.style_steps, view.style_distances))
