"""`stylelora-tui mix`: PEFT's add_weighted_adapter into a new run that compare and export accept.

Three tiny runs are trained once for the module (two of rank 8 with different
seeds, one of rank 16). The refusals are checked on copies of those runs with
one file changed, and before any model is loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli_env, stylelora_command, write_corpus, write_tiny_config

from stylelora_tui import config as config_mod
from stylelora_tui.mix import MixError, check_recipe, plan_mix
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace

pytestmark = pytest.mark.slow


def _config(workspace: Path, model: Path, name: str, *, r: int, seed: int) -> Path:
    path = write_tiny_config(workspace, model, name=name, backend="peft", load_in_4bit=False, max_steps=6, save_steps=6,
                             gradient_checkpointing=False, seed=seed)
    cfg = config_mod.load(path, check_paths=False)
    cfg["lora"].update(r=r, lora_alpha=2 * r)
    config_mod.save(path, cfg)
    return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_model) -> Workspace:
    """Runs a and b (r=8, seeds 1 and 2) and wide (r=16), trained side by side."""
    root = tmp_path_factory.mktemp("mix-ws")
    write_corpus(root / "corpus")
    (root / "configs").mkdir()
    jobs = {}
    for name, r, seed in (("a", 8, 1), ("b", 8, 2), ("wide", 16, 3)):
        command = stylelora_command("train", "-w", str(root), "--name", name, str(_config(root, tiny_model, name, r=r, seed=seed)))
        jobs[name] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=cli_env(), stdin=subprocess.DEVNULL)
    for name, job in jobs.items():
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    return Workspace(root)


def mix_cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(stylelora_command("mix", "-w", str(ws.root), *args), check=False, capture_output=True, text=True,
                          timeout=300, env=cli_env(), stdin=subprocess.DEVNULL)


def copy_run(ws: Workspace, source: str, name: str) -> Run:
    shutil.copytree(ws.runs_dir / source, ws.runs_dir / name)
    return Run(ws.runs_dir / name)


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def ties(ws) -> subprocess.CompletedProcess:
    return mix_cli(ws, "a", "b", "--method", "ties", "--weights", "0.6,0.4", "--density", "0.5", "--name", "ab-ties")


def test_ties_mix_is_a_completed_run_with_its_recipe(ties, ws):
    assert ties.returncode == 0, ties.stderr
    assert "loading adapter 2/2: b" in ties.stderr and "combining with add_weighted_adapter (ties, density 0.5" in ties.stderr
    run = ws.find_run("ab-ties")
    assert run.state == "completed" and run.summary()["state"] == "completed"
    for file in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "stylelora.json"):
        assert (run.adapter_dir / file).exists(), file
    recipe = json.loads((run.path / "mix.json").read_text())
    assert recipe["method"] == "ties" and recipe["weights"] == [0.6, 0.4] and recipe["density"] == 0.5
    assert [s["name"] for s in recipe["sources"]] == ["a", "b"] and recipe["sources"][1]["path"] == str(ws.runs_dir / "b")
    cfg = run.config()  # config.yaml loads like a trained run's, with the mixed adapter's shape
    assert cfg["lora"]["r"] == 8 and cfg["lora"]["lora_alpha"] == 8 and cfg["data"] == ws.find_run("a").config()["data"]
    assert run.config_path.read_text().startswith("# Not trained: a mix of adapters (ties: a x 0.6, b x 0.4")
    assert not list(ws.root.glob(".mix-*"))  # the temporary folder was renamed into runs/


def test_ties_mix_equals_peft_computed_directly_and_generates(ties, ws, tiny_model):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert ties.returncode == 0, ties.stderr
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                                      str(ws.runs_dir / "a" / "adapter"), adapter_name="x")
    model.load_adapter(str(ws.runs_dir / "b" / "adapter"), adapter_name="y")
    model.add_weighted_adapter(["x", "y"], [0.6, 0.4], "direct", combination_type="ties", density=0.5)
    direct = {k: v for k, v in model.state_dict().items() if ".direct." in k}
    saved = load_file(str(ws.runs_dir / "ab-ties" / "adapter" / "adapter_model.safetensors"))
    assert len(saved) == len(direct) > 0
    key = next(k for k in saved if "q_proj.lora_A" in k)
    assert torch.equal(saved[key], direct[key.replace(".lora_A.weight", ".lora_A.direct.weight")])
    assert all(torch.equal(v, direct[k.replace(".weight", ".direct.weight")]) for k, v in saved.items())
    assert not torch.equal(saved[key], load_file(str(ws.runs_dir / "a" / "adapter" / "adapter_model.safetensors"))[key])
    # Plain PEFT loads it and generates.
    mixed = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(ws.runs_dir / "ab-ties" / "adapter"))
    tokenizer = AutoTokenizer.from_pretrained(ws.runs_dir / "ab-ties" / "adapter")
    ids = tokenizer("You wind the lamp", return_tensors="pt")["input_ids"]
    out = mixed.generate(input_ids=ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids.shape[1]


def test_export_merge_and_compare_accept_the_mixed_run(ties, ws):
    assert ties.returncode == 0, ties.stderr
    exported = subprocess.run(stylelora_command("export", "ab-ties", "-w", str(ws.root), "--merge"),
                              check=False, capture_output=True, text=True, timeout=300, env=cli_env())
    assert exported.returncode == 0, exported.stderr
    assert "max abs difference" in exported.stdout and (ws.runs_dir / "ab-ties" / "merged" / "model.safetensors").exists()
    assert "| r | 8 |" in (ws.runs_dir / "ab-ties" / "adapter" / "README.md").read_text()
    page = ws.root / "compare.html"
    compared = subprocess.run(stylelora_command("compare", "ab-ties", "-w", str(ws.root), "-o", str(page), "--prompts", "1",
                                                "--samples", "1", "--max-new-tokens", "8"),
                              check=False, capture_output=True, text=True, timeout=300, env=cli_env())
    assert compared.returncode == 0, compared.stderr
    assert page.exists() and "ab-ties" in page.read_text()


def test_dare_ties_mix_loads_in_plain_peft_and_generates(ws, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = mix_cli(ws, "a", "b", "--method", "dare_ties", "--weights", "1,0.5", "--density", "0.7", "--name", "ab-dare")
    assert result.returncode == 0, result.stderr
    adapter = ws.runs_dir / "ab-dare" / "adapter"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(adapter))
    ids = AutoTokenizer.from_pretrained(adapter)("Fog comes in", return_tensors="pt")["input_ids"]
    assert model.generate(input_ids=ids, max_new_tokens=4, do_sample=False).shape[1] > ids.shape[1]
    assert json.loads((ws.runs_dir / "ab-dare" / "mix.json").read_text())["density"] == 0.7


def test_svd_mixes_different_ranks_with_one_thread(ws):
    result = mix_cli(ws, "a", "wide", "--method", "ties_svd", "--weights", "1,1", "--name", "a-wide-svd")
    assert result.returncode == 0, result.stderr
    assert "1 CPU thread(s)" in result.stderr
    run = ws.find_run("a-wide-svd")
    recipe = json.loads((run.path / "mix.json").read_text())
    assert recipe["r"] == 16 and recipe["torch_threads"] == 1 and recipe["density"] == 0.5  # the default density
    assert json.loads((run.adapter_dir / "adapter_config.json").read_text())["r"] == 16


def test_same_rank_methods_refuse_different_ranks_before_loading(ws):
    started = time.monotonic()
    result = mix_cli(ws, "a", "wide", "--method", "ties", "--weights", "0.5,0.5", "--name", "nope")
    assert result.returncode == 2
    assert "runs a and wide have different ranks (a: r=8; wide: r=16)" in result.stderr
    assert "cat or the *_svd methods" in result.stderr and "loading" not in result.stderr
    assert time.monotonic() - started < 30 and not (ws.runs_dir / "nope").exists()


@pytest.mark.parametrize("change, message", [
    ("base", "runs a and other have different base models (a: "),
    ("format", "runs a and other have different data formats (a: instruction; other: raw_text)"),
    ("targets", "runs a and other have different target modules (only a: q_proj; only other: none)"),
    ("rslora", "run other is a rsLoRA adapter (use_rslora: true): PEFT's weighted combination gives a wrong result"),
    ("dora", "run other is a DoRA adapter (use_dora: true)"),
])
def test_incompatible_adapters_are_refused_naming_both(ws, change, message):
    other = copy_run(ws, "a", "other")
    try:
        if change == "base":
            edit_json(other.adapter_dir / "stylelora.json", base_model="someone/another-model")
        elif change == "format":
            cfg = other.config()
            cfg["data"]["format"] = "raw_text"
            config_mod.save(other.config_path, cfg)
        elif change == "targets":
            targets = json.loads((other.adapter_dir / "adapter_config.json").read_text())["target_modules"]
            edit_json(other.adapter_dir / "adapter_config.json", target_modules=[t for t in targets if t != "q_proj"])
        else:
            edit_json(other.adapter_dir / "adapter_config.json", **{f"use_{change}": True})
        with pytest.raises(MixError) as caught:
            plan_mix(ws, ["a", "other"], method="ties", weights=[0.5, 0.5], density=None, name="never")
        assert message in str(caught.value)
        if change == "targets":  # cat combines module by module deltas: different targets are fine
            plan_mix(ws, ["a", "other"], method="cat", weights=[1, 1], density=None, name="never")
    finally:
        shutil.rmtree(other.path)


def test_recipe_and_name_rules(ws):
    with pytest.raises(MixError, match="3 weight\\(s\\) for 2 runs"):
        check_recipe(2, "ties", [0.2, 0.3, 0.5], None)
    with pytest.raises(MixError, match="method linear does not prune, so it takes no density"):
        check_recipe(2, "linear", [1, 1], 0.5)
    with pytest.raises(MixError, match="density 0.0 is out of range"):
        check_recipe(2, "dare_ties", [1, 1], 0.0)
    with pytest.raises(MixError, match="density 1.5 is out of range"):
        check_recipe(2, "ties", [1, 1], 1.5)
    with pytest.raises(MixError, match="at least two runs"):
        check_recipe(1, "ties", [1], None)
    assert check_recipe(2, "dare_linear", [1, 1], 1.0) == 1.0 and check_recipe(2, "cat", [1, 1], None) is None
    with pytest.raises(MixError, match="a run named 'b' already exists"):
        plan_mix(ws, ["a", "b"], method="ties", weights=[1, 1], density=None, name="b")
    with pytest.raises(MixError, match="contains a path separator"):
        plan_mix(ws, ["a", "b"], method="ties", weights=[1, 1], density=None, name="../escape")
    with pytest.raises(MixError, match="run a is given twice"):
        plan_mix(ws, ["a", "a"], method="ties", weights=[1, 1], density=None, name="twice")
    unfinished = copy_run(ws, "b", "unfinished")
    shutil.rmtree(unfinished.adapter_dir)
    try:
        with pytest.raises(MixError, match="run unfinished has no final adapter"):
            plan_mix(ws, ["a", "unfinished"], method="ties", weights=[1, 1], density=None, name="never")
    finally:
        shutil.rmtree(unfinished.path)
    result = mix_cli(ws, "a", "b", "--method", "linear", "--weights", "1", "--name", "x")
    assert result.returncode == 2 and "1 weight(s) for 2 runs" in result.stderr


def test_a_failure_in_peft_leaves_no_half_run(ws):
    broken = copy_run(ws, "b", "broken")
    (broken.adapter_dir / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    try:
        result = mix_cli(ws, "a", "broken", "--method", "linear", "--weights", "1,1", "--name", "half")
        assert result.returncode == 2 and "stylelora-tui mix: PEFT could not mix the adapters" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (ws.runs_dir / "half").exists() and not list(ws.root.glob(".mix-*"))
    finally:
        shutil.rmtree(broken.path)


def test_sigterm_cancels_a_mix_cleanly(ws):
    """The app's cancel: SIGTERM while PEFT's child works ends the mix with a message and leaves nothing."""
    import signal

    job = subprocess.Popen(stylelora_command("mix", "-w", str(ws.root), "a", "b", "--method", "linear", "--weights", "1,1",
                                             "--name", "stopped"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), stdin=subprocess.DEVNULL)
    said = []
    for line in job.stderr:  # the child's first progress line: the handler is in place and PEFT's process runs
        said.append(line)
        if "loading" in line:
            break
    job.send_signal(signal.SIGTERM)
    _, rest = job.communicate(timeout=120)
    said.append(rest)
    assert job.returncode == 2, "".join(said)
    assert "stylelora-tui mix: cancelled (SIGTERM); no run was written" in rest and "Traceback" not in rest
    assert not (ws.runs_dir / "stopped").exists() and not list(ws.root.glob(".mix-*"))
