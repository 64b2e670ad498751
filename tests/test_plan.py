"""The launch plan: total steps as transformers counts them, and the launch summary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command, write_corpus, write_tiny_config
from stylelora_tui import config as config_mod
from stylelora_tui.runs.events import read_events
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.training.plan import count_records, launch_summary, steps_for, total_steps

# (records, per_device_train_batch_size, gradient_accumulation_steps, num_train_epochs) -> steps, worked out
# from transformers' Trainer.set_initial_training_values: ceil(ceil(records / batch) / accumulation) per epoch.
CASES = [
    ((24, 4, 4, 1.0), 2),  # 6 batches: one full accumulation and a short one (floor division said 1)
    ((10, 3, 2, 1.0), 2),
    ((5, 2, 4, 3.0), 3),  # fewer batches than one accumulation: still a step per epoch
    ((7, 2, 3, 1.5), 3),
    ((100, 8, 1, 0.5), 7),
    ((9, 3, 3, 2.0), 2),  # exact fit
]


def config_for(workspace: Path, *, batch: int, accumulation: int, epochs: float, max_steps: int = -1) -> dict:
    cfg = config_mod.defaults()
    cfg["data"]["corpus"] = str(workspace / "corpus")
    cfg["train"].update(
        per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, num_train_epochs=epochs,
        max_steps=max_steps,
    )
    return cfg


@pytest.mark.parametrize(("shape", "expected"), CASES)
def test_steps_round_up_a_short_last_accumulation(shape: tuple, expected: int) -> None:
    records, batch, accumulation, epochs = shape
    assert steps_for(records, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
                     num_train_epochs=epochs) == expected


def test_total_steps_counts_the_corpus_as_the_trainer_reads_it(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus", train=24)
    with open(tmp_path / "corpus" / "train.jsonl", "a", encoding="utf-8") as handle:
        handle.write("\n" + json.dumps({"instruction": "", "input": "", "output": "x", "excluded": True}) + "\n")
    assert count_records(tmp_path / "corpus" / "train.jsonl") == 24
    assert total_steps(config_for(tmp_path, batch=4, accumulation=4, epochs=1.0), tmp_path) == (2, 24)
    assert total_steps(config_for(tmp_path, batch=4, accumulation=4, epochs=1.0, max_steps=5), tmp_path) == (5, 24)
    assert total_steps(config_for(tmp_path / "nowhere", batch=4, accumulation=4, epochs=1.0), tmp_path) == (None, None)


def test_launch_summary_names_what_it_could_not_estimate(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus", train=10)
    cfg = config_for(tmp_path, batch=3, accumulation=2, epochs=1.0)
    cfg["model"].update(name=str(tmp_path / "no-such-model"), backend="peft")
    summary = launch_summary(cfg, tmp_path)
    assert (summary.backend, summary.backend_note, summary.total_steps, summary.records) == ("peft", None, 2, 10)
    assert summary.trainable_parameters is None and summary.memory_bytes is None
    text = summary.text()
    assert "Trainable:  unknown (model shape not known)" in text and "Steps:      2 over 10 records" in text
    assert "Memory:" not in text and text.startswith(f"Model:      {tmp_path / 'no-such-model'}")


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "expected"), CASES)
def test_steps_match_transformers_own_count(tmp_path: Path, shape: tuple, expected: int) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    records, batch, accumulation, epochs = shape
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=batch, use_cpu=True,
                             gradient_accumulation_steps=accumulation, num_train_epochs=epochs, report_to=[])
    trainer = Trainer(model=model, args=args, train_dataset=[{"input_ids": [1, 2], "labels": [1, 2]}] * records)
    max_steps = trainer.set_initial_training_values(args, trainer.get_train_dataloader())[-1]
    assert max_steps == expected == steps_for(records, per_device_train_batch_size=batch,
                                              gradient_accumulation_steps=accumulation, num_train_epochs=epochs)


@pytest.mark.slow
def test_a_real_epoch_based_run_takes_the_planned_steps(workspace: Path, tiny_model: Path) -> None:
    """24 records, batch 4, accumulation 4, one epoch: 6 batches make 2 optimizer steps."""
    config_path = write_tiny_config(workspace, tiny_model, backend="peft", max_steps=-1, num_train_epochs=1.0,
                                    gradient_accumulation_steps=4, save_steps=1000, sample_steps=-1)
    planned, records = total_steps(config_mod.load(config_path, workspace=workspace), workspace)
    result = subprocess.run(stylelora_command("train", "-w", str(workspace), str(config_path)), capture_output=True,
                            text=True, timeout=300, env=cli_env(), stdin=subprocess.DEVNULL)
    (run,) = Workspace(workspace).runs()
    assert result.returncode == 0, result.stderr + run.log_path.read_text()
    events = read_events(run.events_path)
    start = next(e for e in events if e["type"] == "start")
    assert (planned, records) == (start["total_steps"], start["train_records"]) == (2, 24)
    assert [e["step"] for e in events if e["type"] == "log"] == [1, 2]
    # `train` follows the run through the core follower: its progress lines reach the end.
    assert "step 2/2" in result.stderr and "completed" in result.stderr
    # `attach` on the finished run replays it from its log, through the same follower.
    attach = subprocess.run(stylelora_command("attach", "-w", str(workspace), run.name), capture_output=True,
                            text=True, timeout=60, env=cli_env(), stdin=subprocess.DEVNULL)
    assert attach.returncode == 0, attach.stderr
    lines = attach.stderr.splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("training ")):]
    assert lines[0].startswith(f"training {tiny_model} with peft on cpu") and lines[0].endswith("24 records, 2 steps")
    assert [line for line in lines if "step 2/2" in line] and lines[-2:] == ["completed", f"adapter: {run.adapter_dir}"]


def test_gradient_checkpointing_auto_turns_on_only_when_the_estimate_does_not_fit():
    from stylelora_tui.training.backends import checkpointing_decision

    gib = 2**30
    assert checkpointing_decision("auto", 3 * gib, 24 * gib) == (False, "auto: 3.0 GiB estimated without it, 24.0 GiB available")
    assert checkpointing_decision("auto", 20 * gib, 24 * gib)[0] is True  # over 80% of the device
    assert checkpointing_decision("auto", None, 24 * gib)[0] is True  # unknown model: the safe side
    assert checkpointing_decision(False, 99 * gib, 24 * gib) == (False, "set in the config")
    assert checkpointing_decision(True, 1, 24 * gib) == (True, "set in the config")
