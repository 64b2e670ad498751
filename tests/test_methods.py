"""Adapter methods (lora.method): config, routing, trainable-parameter counts, and real training per method."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command, write_corpus, write_tiny_config
from stylelora_tui import config as config_mod
from stylelora_tui.runs.events import read_events
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.training.backends import choose_backend
from stylelora_tui.training.estimate import estimate_for_config
from stylelora_tui.training.methods import first_sentence, peft_config
from stylelora_tui.training.plan import launch_summary

METHODS = ["lora", "loraplus", "ia3", "prompt_tuning", "prefix_tuning"]


def method_config(model: Path, corpus: Path, method: str, **lora) -> dict:
    cfg = config_mod.defaults()
    cfg["model"].update(name=str(model), max_seq_length=128, load_in_4bit=False, backend="peft")
    cfg["lora"].update({"method": method, "r": 4, "lora_alpha": 8, "num_virtual_tokens": 6, **lora})
    cfg["data"]["corpus"] = str(corpus)
    return cfg


# --- config -------------------------------------------------------------------------------


def test_the_default_method_is_lora_and_a_config_without_it_still_loads():
    cfg, problems = config_mod.validate({"lora": {"r": 8}}, check_paths=False)
    assert not problems and cfg["lora"]["method"] == "lora" and cfg["lora"]["init_lora_weights"] == "true"
    assert cfg["lora"]["loraplus_lr_ratio"] == 16.0


def test_an_unknown_method_is_named_with_the_choices():
    _, problems = config_mod.validate({"lora": {"method": "ia4"}}, check_paths=False)
    assert len(problems) == 1 and problems[0].key == "lora.method"
    assert "lora, loraplus, ia3, prompt_tuning, prefix_tuning" in problems[0].message and "'ia3'" in problems[0].message


def test_a_lora_variant_under_a_method_without_lora_matrices_is_refused():
    _, problems = config_mod.validate({"lora": {"method": "prompt_tuning", "use_dora": True}}, check_paths=False)
    assert [p.key for p in problems] == ["lora.use_dora"]
    assert "lora and loraplus only" in problems[0].message and "prompt_tuning" in problems[0].message
    # The other methods' own fields are ignored, so switching method keeps a config valid.
    _, problems = config_mod.validate({"lora": {"method": "lora", "num_virtual_tokens": 50, "loraplus_lr_ratio": 4}},
                                      check_paths=False)
    assert not problems


# --- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize("requested", ["auto", "unsloth"])
@pytest.mark.parametrize("method", ["ia3", "prompt_tuning", "prefix_tuning"])
def test_methods_unsloth_cannot_build_go_to_peft_with_the_reason(requested, method):
    backend, note = choose_backend(requested, 1, method)
    assert backend == "peft" and f"lora.method {method} is not offered by Unsloth" in note


def test_lora_and_loraplus_keep_the_requested_backend():
    assert choose_backend("unsloth", 1, "loraplus") == ("unsloth", None)
    assert choose_backend("peft", 1, "ia3") == ("peft", None)


def test_the_launch_summary_names_the_method_and_the_backend_reason(workspace, tiny_model):
    cfg = method_config(tiny_model, write_corpus(workspace / "corpus"), "ia3")
    cfg["model"]["backend"] = "unsloth"
    text = launch_summary(cfg, workspace).text()
    assert "Method:     ia3" in text
    assert "Backend:    peft (lora.method ia3 is not offered by Unsloth" in text


# --- trainable parameters: the estimate against PEFT's own count ---------------------------


@pytest.mark.parametrize("method, lora", [
    ("lora", {}), ("lora", {"use_dora": True, "target_modules": ["q_proj", "down_proj"]}), ("loraplus", {}),
    ("ia3", {}), ("prompt_tuning", {}), ("prompt_tuning", {"num_virtual_tokens": 11}), ("prefix_tuning", {}),
])
def test_the_trainable_count_matches_peft_exactly(workspace, tiny_model, method, lora):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = method_config(tiny_model, write_corpus(workspace / "corpus"), method, **lora)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                           peft_config(cfg, str(tiny_model)))
    trainable, _ = model.get_nb_trainable_parameters()
    estimate = estimate_for_config(cfg)
    assert estimate.trainable_parameters == trainable > 0
    assert estimate.memory.lora_weights == 4 * trainable  # fp32 adapter weights in the memory estimate too


def test_the_time_estimate_counts_lora_matmuls_only_for_the_lora_methods(workspace, tiny_model):
    from stylelora_tui.training import cost

    card = cost.GpuType("G", 80.0, 1e-3, True, 3.6, "test", 0.5, "test")
    corpus = workspace / "corpus"

    def seconds(method: str, r: int) -> float:
        cfg = method_config(tiny_model, corpus, method, r=r)
        cfg["train"]["max_steps"] = 10
        return cost.cost_table(cfg, workspace, gpus=[card]).rows[0].seconds

    assert seconds("lora", 64) > seconds("lora", 4)
    assert seconds("ia3", 64) == seconds("ia3", 4) < seconds("lora", 4)


def test_prompt_tuning_starts_from_the_first_sentence_of_the_corpus(workspace):
    corpus = write_corpus(workspace / "corpus")
    assert first_sentence(corpus) == "You wind the lamp at dusk and count the ships that pass the point."


# --- each method through the real trainer: train, stop, resume, load with plain PEFT ----------


def _cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(stylelora_command(*args[:1], "-w", str(workspace), *args[1:]), capture_output=True, text=True,
                          timeout=300, env=cli_env(), stdin=subprocess.DEVNULL)


def _wait_for_steps(run, count: int) -> None:
    import time

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and run.is_active():
        if sum(e["type"] == "log" for e in read_events(run.events_path)) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {count} logged steps: {run.log_path.read_text()}")


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_stops_resumes_and_loads_in_plain_peft(workspace, tiny_model, method):
    import torch
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = 20
    path = write_tiny_config(workspace, tiny_model, name=method, backend="auto", load_in_4bit=False, max_steps=steps,
                             save_steps=1000, sample_max_new_tokens=8, bf16=False)
    cfg = config_mod.load(path, check_paths=False)
    cfg["lora"].update(method=method, num_virtual_tokens=8, loraplus_lr_ratio=16.0)
    config_mod.save(path, cfg)

    started = _cli(workspace, "train", str(path), "--detach")
    assert started.returncode == 0, started.stderr
    run = Workspace(workspace).runs()[0]
    _wait_for_steps(run, 2)
    stopped = _cli(workspace, "stop", run.name, "--wait")
    assert stopped.returncode == 0 and run.status()["state"] == "stopped", stopped.stderr + run.log_path.read_text()
    checkpoint = run.latest_checkpoint()
    assert checkpoint is not None
    if method == "loraplus":
        # PEFT's LoRA+ optimizer: B matrices train at 16 times the learning rate of A.
        groups = torch.load(checkpoint / "optimizer.pt", weights_only=False)["param_groups"]
        assert {g["lr"] for g in groups if g["params"]} == {5.0e-3, 16 * 5.0e-3}

    resumed = _cli(workspace, "train", "--resume", run.name)
    assert resumed.returncode == 0, resumed.stderr + run.log_path.read_text()
    events = read_events(run.events_path)
    starts = [e for e in events if e["type"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed_from"].endswith(checkpoint.name)
    # Unsloth builds LoRA only: the others go to plain PEFT, and the start event says why.
    expected_note = None if method in ("lora", "loraplus") else f"lora.method {method} is not offered by Unsloth"
    assert all((s["backend_note"] or "").startswith(expected_note or "") for s in starts)
    assert [e["step"] for e in events if e["type"] == "log"][-1] == steps and run.status()["state"] == "completed"
    assert starts[0]["trainable_params"] == estimate_for_config(cfg).trainable_parameters
    # Live samples (at each checkpoint) come from the adapter being trained, whatever the method.
    samples = [e for e in events if e["type"] == "sample"]
    assert samples and all(isinstance(e["text"], str) and e["prompt"] for e in samples), samples

    adapter = run.adapter_dir
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    inputs = tokenizer("You wind the lamp", return_tensors="pt")
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)(**inputs).logits[:, -1]
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), adapter)
        assert (tuned(**inputs).logits[:, -1] - base).abs().max().item() > 1e-4
        auto = AutoPeftModelForCausalLM.from_pretrained(adapter)
        assert auto.peft_config["default"].peft_type.value.lower().replace("_", "") == {
            "lora": "lora", "loraplus": "lora", "ia3": "ia3", "prompt_tuning": "prompttuning",
            "prefix_tuning": "prefixtuning"}[method]
        assert tokenizer.decode(auto.generate(**inputs, max_new_tokens=4, do_sample=False)[0])

    # Merge where the method can be merged; prompt tuning says plainly why not.
    merged = _cli(workspace, "export", run.name, "--merge")
    if method in ("prompt_tuning", "prefix_tuning"):
        assert merged.returncode == 2, merged.stderr
        assert f"{method.replace('_', ' ')} cannot be merged into the weights" in merged.stderr and "Traceback" not in merged.stderr
    else:
        assert merged.returncode == 0, merged.stderr
        assert (run.path / "merged" / "config.json").exists()
    if method == "prompt_tuning":
        # Compare scores the held-out loss past the virtual tokens' positions (they come first in the logits).
        compared = _cli(workspace, "compare", run.name, "--prompts", "1", "--samples", "1", "--max-new-tokens", "8",
                        "-o", str(workspace / "compare.html"))
        out = compared.stdout + compared.stderr
        assert compared.returncode == 0 and "held-out loss: base" in out and "failed" not in out, out


def test_runs_of_different_methods_compare_side_by_side(workspace, tiny_model):
    """LoRA, IA3 and prompt tuning in one comparison: one base copy per adapter type, each side its own adapter."""
    import json

    for method in ("lora", "ia3", "prompt_tuning"):
        path = write_tiny_config(workspace, tiny_model, name=method, backend="peft", load_in_4bit=False, max_steps=4,
                                 save_steps=1000, sample_steps=-1, bf16=False)
        cfg = config_mod.load(path, check_paths=False)
        cfg["lora"].update(method=method, num_virtual_tokens=8)
        config_mod.save(path, cfg)
        trained = _cli(workspace, "train", str(path), "--name", method)
        assert trained.returncode == 0, trained.stderr

    methods = ("lora", "ia3", "prompt_tuning")

    def compare(*runs: str) -> dict[str, dict]:
        """Each run's compare.json (the base against it) after comparing ``runs`` together."""
        page = workspace / f"{'-'.join(runs)}.html"
        done = _cli(workspace, "compare", *runs, "--prompts", "1", "--samples", "1", "--temperature", "0",
                    "--max-new-tokens", "8", "-o", str(page))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "failed" not in done.stdout + done.stderr
        assert all(f">{run}</div>" in page.read_text() for run in runs)  # one column per side on the page
        return {run: json.loads((workspace / "runs" / run / "compare.json").read_text()) for run in runs}

    together = compare(*methods)

    def text(result: dict, side: str) -> str:
        return result["prompts"][0]["samples"][side][0]["text"]

    # Each side wrote what it writes alone: no adapter of another type leaked into it, and the base is the base.
    for method in methods:
        alone = compare(method)[method]
        assert text(together[method], method) == text(alone, method)
        assert text(together[method], "base") == text(alone, "base")
        assert together[method]["eval_loss"][method]["eval_loss"] == pytest.approx(alone["eval_loss"][method]["eval_loss"], rel=1e-3)
    assert len({text(together[m], m) for m in methods} | {text(together["lora"], "base")}) > 1  # the sides differ


# --- the config form: a method's own fields only when they apply ----------------------------


async def settle(pilot) -> None:
    await pilot.pause(0.2)  # the form checks 0.12 s after the last keystroke
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.anyio
async def test_the_form_shows_a_methods_fields_only_under_it(tmp_path):
    from stylelora_tui.screens.app import make_app

    app = make_app(tmp_path / "ws", start="config", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen

        def shown(key: str) -> bool:
            return bool(screen.query_one(f"#r-lora-{key}").display)

        assert shown("r") and shown("init_lora_weights") and not shown("loraplus_lr_ratio") and not shown("num_virtual_tokens")
        # Keyboard only: down to the method menu, open it, pick prompt_tuning.
        for _ in range(5):
            await pilot.press("down")
        assert app.focused.id == "f-lora-method"
        await pilot.press("enter", "down", "down", "down", "enter")
        await settle(pilot)
        assert screen.query_one("#f-lora-method").value == "prompt_tuning"
        assert shown("num_virtual_tokens") and not shown("r") and not shown("target_modules") and not shown("loraplus_lr_ratio")
        await pilot.press("down")
        assert app.focused.id == "f-lora-num_virtual_tokens"  # hidden fields are skipped
