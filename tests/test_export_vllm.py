"""``export RUN_A RUN_B --vllm DIR``: real PEFT adapters (made untrained on the tiny model) in real run folders.

vLLM does not run here: the written folders, ``serve.sh`` (run with a stand-in
``vllm`` that prints its arguments) and the README's requests are checked
against vLLM's rules.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command
from stylelora_tui import config as config_mod
from stylelora_tui.export import DEMO_HUB_ID, ExportError
from stylelora_tui.export_vllm import VLLM_RANKS, vllm_rank, write_vllm_export
from stylelora_tui.runs.control import create_run
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def make_run(workspace: Path, tiny_model: Path, name: str, *, base_model: str = SMOL, base_model_path: str | None = None,
             adapter: bool = True, r: int = 8, target_modules: tuple[str, ...] = ("q_proj", "v_proj"), **lora: object) -> Run:
    """A run folder as the trainer leaves it: config, completed status, adapter/ with stylelora.json."""
    import peft
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = config_mod.defaults()
    cfg["model"].update(name=base_model, backend="peft", load_in_4bit=False)
    cfg["lora"].update(r=r, lora_alpha=2 * r)
    run = create_run(Workspace(workspace), cfg, name=name)
    if not adapter:
        return run
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    peft_model = peft.get_peft_model(model, peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules), **lora))
    peft_model.save_pretrained(str(run.adapter_dir), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(tiny_model)).save_pretrained(str(run.adapter_dir))
    meta = {"base_model": base_model, "base_model_path": base_model_path or str(tiny_model), "backend": "peft", "config": cfg}
    (run.adapter_dir / "stylelora.json").write_text(json.dumps(meta), encoding="utf-8")
    run.update_status(state="completed")
    return run


def vllm_arguments(serve_script: Path, tmp_path: Path) -> list[str]:
    """What ``serve.sh`` hands ``vllm``: a stand-in on PATH prints one argument a line."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "vllm"
    fake.write_text('#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([str(serve_script)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def readme_requests(readme: str) -> list[dict]:
    bodies = re.findall(r"curl http://localhost:8000/v1/completions \\\n.*\\\n  -d '(.*)'", readme)
    return [json.loads(body) for body in bodies]


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(stylelora_command("export", *args, "-w", str(workspace)), capture_output=True, text=True,
                          timeout=120, env=cli_env(), stdin=subprocess.DEVNULL)


def test_vllm_rank_rounds_up_to_an_accepted_value_and_refuses_above_512() -> None:
    assert [vllm_rank(r) for r in (1, 2, 8, 9, 16, 20, 33, 300, 320, 321, 512)] == [1, 8, 8, 16, 16, 32, 64, 320, 320, 512, 512]
    assert VLLM_RANKS[-1] == 512
    with pytest.raises(ExportError, match="rank 513 is above 512"):
        vllm_rank(513)


def test_two_adapters_make_folders_serve_script_and_requests(tmp_path: Path, tiny_model: Path) -> None:
    ws = tmp_path / "ws"
    make_run(ws, tiny_model, "hemingway", r=8)
    make_run(ws, tiny_model, "woolf v2", r=16, base_model="demo")  # "demo" is SmolLM2: the same base
    out = tmp_path / "serve dir's"  # a space and a quote: serve.sh must quote paths
    result = write_vllm_export([Workspace(ws).find_run("hemingway"), Workspace(ws).find_run("woolf v2")], out)

    assert sorted(p.name for p in out.iterdir()) == ["README.md", "hemingway", "serve.sh", "woolf_v2"]
    assert not out.with_name(out.name + ".partial").exists()
    for name, rank in (("hemingway", 8), ("woolf_v2", 16)):
        config = json.loads((out / name / "adapter_config.json").read_text())
        assert config["r"] == rank and (out / name / "adapter_model.safetensors").stat().st_size > 0
    assert result.max_lora_rank == 16 and result.base == DEMO_HUB_ID and result.notes == []

    assert os.access(out / "serve.sh", os.X_OK)
    assert vllm_arguments(out / "serve.sh", tmp_path) == [
        "serve", DEMO_HUB_ID, "--enable-lora", "--lora-modules", f"hemingway={out}/hemingway", f"woolf_v2={out}/woolf_v2",
        "--max-lora-rank", "16", "--max-loras", "2",
    ]
    requests = readme_requests((out / "README.md").read_text())
    assert [r["model"] for r in requests] == ["hemingway", "woolf_v2"]
    assert all(r["prompt"] and r["max_tokens"] > 0 for r in requests)


def test_the_folder_moves_with_its_script_and_extra_options_pass_through(tmp_path: Path, tiny_model: Path) -> None:
    ws = tmp_path / "ws"
    run = make_run(ws, tiny_model, "solo", r=20)
    write_vllm_export([run], tmp_path / "first")
    (tmp_path / "first").rename(tmp_path / "moved")
    args = vllm_arguments(tmp_path / "moved" / "serve.sh", tmp_path)
    assert f"solo={tmp_path / 'moved'}/solo" in args
    assert args[args.index("--max-lora-rank") + 1] == "32"  # rank 20 -> 32
    assert args[args.index("--max-loras") + 1] == "1"


def test_rank_pattern_counts_for_the_servers_rank(tmp_path: Path, tiny_model: Path) -> None:
    run = make_run(tmp_path / "ws", tiny_model, "patterned", r=8, rank_pattern={"q_proj": 40})
    assert write_vllm_export([run], tmp_path / "out").max_lora_rank == 64


def test_a_local_base_is_served_by_path_with_a_note(tmp_path: Path, tiny_model: Path) -> None:
    local = "/models/my base's copy"  # a space and a quote: serve.sh must quote it
    runs = [make_run(tmp_path / "ws", tiny_model, name, base_model="./base", base_model_path=local) for name in "ab"]
    result = write_vllm_export(runs, tmp_path / "out")
    assert vllm_arguments(result.serve_script, tmp_path)[1] == local  # where the trainer loaded it
    assert result.notes and "no Hub id" in result.notes[0]
    assert "local folder" in result.serve_script.read_text() and "local folder" in result.readme.read_text()


@pytest.mark.parametrize(
    ("lora", "reason"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"bias": "lora_only"}, "bias: 'lora_only'"),
        ({"modules_to_save": ["norm"]}, "modules_to_save"),
        ({"target_modules": ("q_proj", "lm_head")}, "lm_head"),
        ({"target_modules": ("embed_tokens", "v_proj")}, "embed_tokens"),
    ],
)
def test_what_vllm_rejects_is_refused_naming_the_run(tmp_path: Path, tiny_model: Path, lora: dict, reason: str) -> None:
    ws = tmp_path / "ws"
    good = make_run(ws, tiny_model, "fine")
    bad = make_run(ws, tiny_model, "refused-one", **lora)
    with pytest.raises(ExportError, match=r"run refused-one: vLLM would refuse") as caught:
        write_vllm_export([good, bad], tmp_path / "out")
    assert reason in str(caught.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    write_vllm_export([good], tmp_path / "out")  # the good one alone goes through


def test_different_bases_and_missing_adapters_are_refused(tmp_path: Path, tiny_model: Path) -> None:
    ws = tmp_path / "ws"
    smol = make_run(ws, tiny_model, "smol")
    qwen = make_run(ws, tiny_model, "qwen", base_model="Qwen/Qwen2.5-0.5B")
    with pytest.raises(ExportError, match=f"runs smol and qwen have different base models \\({SMOL} and Qwen/Qwen2.5-0.5B\\)"):
        write_vllm_export([smol, qwen], tmp_path / "out")
    unfinished = make_run(ws, tiny_model, "unfinished", adapter=False)
    with pytest.raises(ExportError, match="run unfinished has no final adapter"):
        write_vllm_export([smol, unfinished], tmp_path / "out")
    with pytest.raises(ExportError, match="would both be served as 'smol'"):
        write_vllm_export([smol, smol], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_non_empty_folder_is_kept_unless_forced(tmp_path: Path, tiny_model: Path) -> None:
    run = make_run(tmp_path / "ws", tiny_model, "style")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty.*--force"):
        write_vllm_export([run], out)
    assert (out / "mine.txt").read_text() == "keep me"
    write_vllm_export([run], out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "serve.sh", "style"]
    assert not any(p.name.startswith((".out.old", "out.partial")) for p in tmp_path.iterdir())
    with pytest.raises(ExportError, match="outside the runs"):
        write_vllm_export([run], tmp_path / "ws", force=True)  # would delete the run it copies
    assert (run.adapter_dir / "adapter_config.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_vllm_export([run], empty).path == empty.resolve()


def test_a_failed_copy_leaves_the_previous_export_and_no_partial_folder(tmp_path: Path, tiny_model: Path) -> None:
    run = make_run(tmp_path / "ws", tiny_model, "style")
    out = tmp_path / "out"
    write_vllm_export([run], out)
    before = (out / "serve.sh").read_text()
    (run.adapter_dir / "tokenizer.json").unlink()
    (run.adapter_dir / "tokenizer.json").symlink_to(tmp_path / "gone")  # copytree fails on it, after copying the rest
    with pytest.raises(ExportError, match="could not write the vLLM export"):
        write_vllm_export([run], out, force=True)
    assert (out / "serve.sh").read_text() == before and (out / "style" / "tokenizer.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "ws"]


def test_cli_exports_several_runs_and_refuses_clearly(tmp_path: Path, tiny_model: Path) -> None:
    ws = tmp_path / "ws"
    make_run(ws, tiny_model, "alpha", r=8)
    make_run(ws, tiny_model, "beta", r=16)
    make_run(ws, tiny_model, "dora", use_dora=True)
    out = tmp_path / "vllm"

    done = cli(ws, "alpha", "beta", "--vllm", str(out))
    assert done.returncode == 0, done.stderr
    assert f"serve: {out / 'serve.sh'}" in done.stdout and "--max-lora-rank 16" in done.stdout
    assert "--max-loras 2" in (out / "serve.sh").read_text()

    again = cli(ws, "alpha", "beta", "--vllm", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
    assert cli(ws, "alpha", "beta", "--vllm", str(out), "--force").returncode == 0

    refused = cli(ws, "alpha", "dora", "--vllm", str(tmp_path / "other"))
    assert refused.returncode == 2 and "run dora" in refused.stderr and "DoRA" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "other").exists()

    several = cli(ws, "alpha", "beta")
    assert several.returncode == 2 and "only with --vllm" in several.stderr
    mixed = cli(ws, "alpha", "--vllm", str(tmp_path / "x"), "--merge")
    assert mixed.returncode == 2 and "--vllm does not go with --merge" in mixed.stderr
    missing = cli(ws, "alpha", "nosuch", "--vllm", str(tmp_path / "y"))
    assert missing.returncode == 2 and "no run 'nosuch'" in missing.stderr

    single = cli(ws, "alpha")  # one run, no --vllm: the model card, as before
    assert single.returncode == 0, single.stderr
    assert "model card:" in single.stderr and (ws / "runs" / "alpha" / "adapter" / "README.md").exists()
