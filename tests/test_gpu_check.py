"""bench/gpu_check.py: the builder makes the asked shape, no GPU means exit 0, and the reduced form runs every check here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SENTENCES, cli_env

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_builder_makes_a_model_of_the_given_shape_that_the_estimator_reads_back(tmp_path: Path) -> None:
    from stylelora_tui.training.model_shapes import ModelShape, shape_for

    shape = ModelShape("odd", hidden_size=96, intermediate_size=160, num_hidden_layers=3, num_attention_heads=6,
                       num_key_value_heads=2, vocab_size=1000, tie_word_embeddings=True, max_position_embeddings=512)
    folder = load_bench().build_model_with_shape(tmp_path / "odd", shape, SENTENCES * 20, dtype="float32",
                                                 tokenizer_vocab=400)
    read = shape_for(str(folder))
    for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "vocab_size", "tie_word_embeddings"):
        assert getattr(read, field) == getattr(shape, field), field
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        count = sum(_numel(weights.get_slice(name).get_shape()) for name in weights.keys())
    assert count == shape.total_parameters()


def _numel(dims) -> int:
    total = 1
    for d in dims:
        total *= d
    return total


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--json", str(tmp_path / "x.json")], capture_output=True,
                         text=True, timeout=300, env={**cli_env(), "CUDA_VISIBLE_DEVICES": ""}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no CUDA GPU here" in out.stdout and "--reduced" in out.stdout
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_the_reduced_form_runs_every_check_and_writes_the_table_as_json(tmp_path: Path) -> None:
    report_path = tmp_path / "gpu-check.json"
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--reduced", "--backends", "peft", "--json", str(report_path),
         "--workspace", str(tmp_path / "ws")],
        capture_output=True, text=True, timeout=900, env={**cli_env(), "CUDA_VISIBLE_DEVICES": ""}, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(report_path.read_text())
    checks = report["checks"]
    assert list(checks) == ["qlora-3b/peft", "demo-run", "compare", "merge"]
    assert all(row["ok"] for row in checks.values()), checks
    assert report["reduced"] is True and report["device"].startswith("cpu")
    qlora = checks["qlora-3b/peft"]["figures"]
    assert qlora["tokens_per_s"] > 0 and qlora["gradient_checkpointing"] is False
    demo = checks["demo-run"]["figures"]
    assert demo["steps"] == 30 and demo["stopped_at"].startswith("checkpoint-")
    compare = checks["compare"]["figures"]
    assert compare["samples"] == 2 * 2 * 2 and compare["samples_per_s"] > 0  # 2 prompts x 2 sides x 2 samples
    assert checks["merge"]["figures"]["wall_s"] > 0
    assert (tmp_path / "ws" / "merged" / "config.json").exists()
    table = out.stdout[out.stdout.index("GPU check on"):]
    for name in checks:
        assert f"\n{name} " in table
