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
