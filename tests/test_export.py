"""Model card, merge with a logits check, and the Hub push's error paths (no network)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import cli_env, stylelora_command
from stylelora_tui import export
from stylelora_tui.runs.run import Run
from trained_run import trained_run

FAKE_TOKEN = "hf_FAKEtokenStyleLoraTest0123456789abcd"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model):
    return trained_run(tmp_path_factory, tiny_model)


@pytest.fixture(scope="module")
def exported(run):
    """`export RUN --merge --push ...` with a fake token in the environment (offline: the push fails clearly)."""
    env = cli_env()
    env["HF_TOKEN"] = FAKE_TOKEN
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        stylelora_command("export", run.name, "-w", str(run.path.parent.parent), "--merge", "--push", "someone/tiny-style"),
        capture_output=True, text=True, timeout=300, env=env,
    )
    return result


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


pytestmark = pytest.mark.slow


def test_export_writes_card_and_merged_model_then_reports_offline_push(exported, run):
    assert exported.returncode == 2, exported.stderr
    assert "HF_HUB_OFFLINE is set" in exported.stderr
    assert f"model card: {run.adapter_dir / 'README.md'}" in exported.stderr
    assert "max abs difference" in exported.stdout
    assert (run.path / "merged" / "model.safetensors").exists()


def test_model_card_has_hub_metadata_losses_and_the_peft_snippet(exported, run):
    card = (run.adapter_dir / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert {"lora", "peft", "text-generation"} <= set(meta["tags"]) and "unsloth" not in meta["tags"]
    assert "base_model" not in meta  # a local folder is no Hub id
    train_loss, eval_loss, steps = export.final_losses(run)
    assert f"Final training loss: {train_loss:.4f}" in card and f"held-out (eval) loss: {eval_loss:.4f}" in card
    assert "| r | 8 |" in card and "| learning_rate | 0.005 |" in card and steps == 12
    assert "from peft import PeftModel" in card and "PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(" in card


def test_merged_folder_loads_with_plain_transformers_and_matches_the_adapter(exported, run, tiny_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = run.path / "merged"
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert merged.dtype == torch.bfloat16 and not hasattr(merged, "peft_config")
    assert front_matter((merged_dir / "README.md").read_text())["library_name"] == "transformers"
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer("You wind the lamp and count the ships", return_tensors="pt")["input_ids"]
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), run.adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        want, got, plain = adapted(ids).logits, merged.float()(ids).logits, base(ids).logits
    diff = (got - want).abs().max().item()
    assert diff < 0.02 * want.abs().max().item(), diff  # bfloat16 rounding only
    assert (plain - want).abs().max().item() > 10 * diff  # the merge carries the adapter's change
    reported = float(exported.stdout.split("max abs difference ")[1].split()[0])
    assert reported < 0.02 * want.abs().max().item()


def test_the_token_is_never_written_anywhere(exported, run):
    roots = [run.path.parent.parent]  # the whole workspace: runs, configs, corpus
    import os

    roots += [Path(os.environ[v]) for v in ("STYLELORA_CONFIG_DIR", "STYLELORA_DATA_DIR") if Path(os.environ[v]).exists()]
    scanned = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                scanned += 1
                assert FAKE_TOKEN.encode() not in path.read_bytes(), path
    assert scanned > 10
    assert FAKE_TOKEN not in exported.stdout + exported.stderr


def test_card_quotes_compare_samples_in_fences(run, tmp_path):
    copy = Run(shutil.copytree(run.path, tmp_path / run.name, ignore=shutil.ignore_patterns("merged", "checkpoints")))
    evil = "```\n<script>alert(1)</script>"
    (copy.path / "compare.json").write_text(json.dumps({
        "style": {"reading": "tiny-run is closer to the author than base by 12%"},
        "prompts": [{"prompt": "You wind", "samples": {"base": [{"seed": 3, "text": "plain"}], run.name: [{"seed": 3, "text": evil}]}}],
    }))
    card = export.model_card(copy, repo_id="someone/tiny-style")
    assert "closer to the author than base by 12%" in card and "(seed 3)" in card
    assert "| general English loss | n/a | n/a |" in card and "Forgetting check" not in card  # an older compare.json
    assert "```text\n`\u200b``\n<script>" in card  # cannot close the fence early
    assert '"someone/tiny-style")' in card


def test_card_records_style_distance_held_out_and_general_losses_of_both_sides(run, tmp_path):
    from stylelora_tui.compare.forgetting import forgetting_report

    copy = Run(shutil.copytree(run.path, tmp_path / run.name, ignore=shutil.ignore_patterns("merged", "checkpoints")))
    general = {"base": {"eval_loss": 3.0}, run.name: {"eval_loss": 3.3}}
    held_out = {"base": {"eval_loss": 4.25}, run.name: {"eval_loss": 3.75}}
    (copy.path / "compare.json").write_text(json.dumps({
        "style": {"variants": {"base": {"delta": 0.61}, run.name: {"delta": 0.42}}}, "prompts": [],
        "eval_loss": held_out, "general_loss": general, "forgetting": forgetting_report(general, held_out, "base", "built-in"),
    }))
    card = export.model_card(copy)
    assert "| Burrows's Delta to the author (lower is closer) | 0.610 | 0.420 |" in card
    assert "| held-out loss (the author's text) | 4.250 | 3.750 |" in card
    assert "| general English loss | 3.000 | 3.300 |" in card
    assert "Forgetting check: general English: loss 3.000 -> 3.300 (+10.0%): over 5%, forgetting." in card


def test_hub_names_and_16_bit_bases():
    assert export.hub_base_id("demo") == export.DEMO_HUB_ID
    assert export.hub_base_id("unsloth/Llama-3.2-3B-Instruct-bnb-4bit") == "unsloth/Llama-3.2-3B-Instruct-bnb-4bit"
    assert export.hub_base_id("/models/local") is None and export.hub_base_id("book.gguf") is None
    assert export.sixteen_bit_base("unsloth/Llama-3.2-3B-Instruct-bnb-4bit") == "unsloth/Llama-3.2-3B-Instruct"
    assert export.sixteen_bit_base("unsloth/Qwen3-4B-unsloth-bnb-4bit") == "unsloth/Qwen3-4B"


def test_push_error_paths_have_clear_messages(run, monkeypatch):
    import huggingface_hub

    folder = run.adapter_dir
    for bad in ("bad name!", "a/b/c", "-leading/x", "x" * 120):
        with pytest.raises(export.ExportError, match="invalid repository name"):
            export.push(folder, bad)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(export.ExportError, match="no Hugging Face token: run `hf auth login` or set HF_TOKEN"):
        export.push(folder, "someone/tiny-style")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    with pytest.raises(export.ExportError, match="HF_HUB_OFFLINE is set") as offline:
        export.push(folder, "someone/tiny-style")
    assert FAKE_TOKEN not in str(offline.value)
    assert "is taken (409)" in export._http_message("someone/x", 409, RuntimeError())
    assert "no write access" in export._http_message("someone/x", 403, RuntimeError())


def test_push_without_network_says_so(run):
    """A closed local port stands in for a machine without network."""
    env = cli_env()
    env.update(HF_TOKEN=FAKE_TOKEN, HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    code = f"from stylelora_tui import export; export.push({str(run.adapter_dir)!r}, 'someone/tiny-style')"
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1 and "cannot reach the Hugging Face Hub (no network?)" in result.stderr


def test_export_of_a_run_without_adapter_fails_clearly(tmp_path):
    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.workspace import Workspace
    from stylelora_tui.runs.control import create_run

    cfg = config_mod.defaults()
    cfg["model"]["name"] = "demo"
    new = create_run(Workspace(tmp_path), cfg, name="unfinished")
    result = subprocess.run(stylelora_command("export", str(new.path), "--merge"), capture_output=True, text=True,
                            timeout=60, env=cli_env())
    assert result.returncode == 2 and "has no adapter" in result.stderr and "train it to the end first" in result.stderr
