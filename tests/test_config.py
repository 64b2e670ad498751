"""The run config: defaults, validation messages, YAML lines, saving."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import write_corpus
from stylelora_tui import config as config_mod


def problems_of(raw, **kwargs) -> list[str]:
    _, problems = config_mod.validate(raw, check_paths=False, **kwargs)
    return [str(p) for p in problems]


def test_defaults_are_the_labs_values():
    cfg = config_mod.defaults()
    assert cfg["model"]["name"] == "unsloth/Llama-3.2-3B-Instruct-bnb-4bit"
    assert cfg["model"]["max_seq_length"] == 2048 and cfg["model"]["load_in_4bit"] is True
    assert (cfg["lora"]["r"], cfg["lora"]["lora_alpha"], cfg["lora"]["lora_dropout"]) == (16, 32, 0.0)
    assert cfg["lora"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    train = cfg["train"]
    assert (train["per_device_train_batch_size"], train["gradient_accumulation_steps"]) == (2, 4)
    assert (train["learning_rate"], train["num_train_epochs"], train["seed"]) == (2e-4, 2.0, 3407)
    assert train["bf16"] == "auto"


def test_every_preset_is_valid():
    for name in config_mod.PRESETS:
        assert problems_of(config_mod.preset(name)) == [], name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"lora": {"r": 0}}, "lora.r: must be > 0, got 0"),
        ({"lora": {"r": -4}}, "lora.r: must be > 0"),
        ({"train": {"learning_rate": 0}}, "train.learning_rate: must be > 0"),
        ({"train": {"learning_rate": -1e-4}}, "train.learning_rate: must be > 0"),
        ({"lora": {"lora_dropout": 1.0}}, "lora.lora_dropout: must be < 1"),
        ({"lora": {"lora_dropout": -0.1}}, "lora.lora_dropout: must be >= 0"),
        ({"lora": {"target_modules": []}}, "lora.target_modules: must name at least one module"),
        ({"lora": {"target_modules": ["q_proj", "qq_proj"]}}, "unknown module 'qq_proj' (did you mean 'q_proj'?)"),
        ({"lora": {"r": "sixteen"}}, "lora.r: must be an integer, got text 'sixteen'"),
        ({"lora": {"r": True}}, "lora.r: must be an integer, got a boolean"),
        ({"model": {"load_in_4bit": "yes"}}, "model.load_in_4bit: must be true or false"),
        ({"model": {"backend": "unslot"}}, "did you mean 'unsloth'?"),
        ({"lora": {"lora_dropuot": 0.1}}, "lora.lora_dropuot: unknown key (did you mean 'lora_dropout'?)"),
        ({"train": {"r": 8}}, "train.r: unknown key (it belongs in the 'lora' section)"),
        ({"trian": {}}, "trian: unknown section (did you mean 'train'?)"),
        ({"train": {"max_steps": 0}}, "train.max_steps: must be -1"),
        ({"train": {"num_train_epochs": float("nan")}}, "must be a finite number"),
        ("just text", "(top level): must be a mapping"),
    ],
)
def test_each_problem_names_its_key(raw, expected):
    found = problems_of(raw)
    assert any(expected in problem for problem in found), found


def test_all_problems_are_reported_at_once():
    found = problems_of({"lora": {"r": 0, "lora_dropout": 2}, "train": {"learning_rate": 0}})
    assert len(found) == 3


def test_numbers_written_as_text_are_read_as_numbers():
    # PyYAML reads "2e-4" as a string; a user expects a learning rate.
    cfg, problems = config_mod.validate(yaml.safe_load("train:\n  learning_rate: 2e-4\n"), check_paths=False)
    assert problems == [] and cfg["train"]["learning_rate"] == pytest.approx(2e-4)


def test_missing_corpus_and_model_folders_are_reported(tmp_path: Path):
    raw = {"model": {"name": "./models/nothing-here"}, "data": {"corpus": "corpus"}}
    _, problems = config_mod.validate(raw, workspace=tmp_path)
    text = "\n".join(str(p) for p in problems)
    assert "model.name: no such model file or folder" in text
    assert f"data.corpus: corpus folder {tmp_path / 'corpus'} does not exist" in text
    (tmp_path / "corpus").mkdir()
    _, problems = config_mod.validate(raw, workspace=tmp_path)
    assert any("has no train.jsonl" in str(p) for p in problems)
    (tmp_path / "corpus" / "train.jsonl").write_text("")
    _, problems = config_mod.validate(raw, workspace=tmp_path)
    assert any("is empty" in str(p) for p in problems)


def test_hub_ids_are_accepted_and_nonsense_names_are_not(tmp_path: Path):
    write_corpus(tmp_path / "corpus")
    ok = {"model": {"name": "unsloth/Llama-3.2-3B-Instruct"}}
    assert config_mod.validate(ok, workspace=tmp_path)[1] == []
    bad = {"model": {"name": "not a model"}}
    assert "neither a local folder nor a Hub id" in str(config_mod.validate(bad, workspace=tmp_path)[1][0])


def test_load_points_at_file_and_line(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name: demo\nlora:\n  r: 0\n  lora_alpha: 32\ntrain:\n  learning_rate: 0\n")
    with pytest.raises(config_mod.ConfigError) as caught:
        config_mod.load(path, check_paths=False)
    messages = [str(p) for p in caught.value.problems]
    assert messages == [f"{path}:4: lora.r: must be > 0, got 0", f"{path}:7: train.learning_rate: must be > 0, got 0.0"]


def test_syntax_errors_and_missing_files_are_clear(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  name: [unclosed\n")
    with pytest.raises(config_mod.ConfigError) as caught:
        config_mod.load(path)
    assert "not valid YAML" in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(config_mod.ConfigError, match="does not exist"):
        config_mod.load(tmp_path / "nope.yaml")


def test_unsafe_yaml_tags_are_refused(tmp_path: Path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(config_mod.ConfigError, match="not valid YAML"):
        config_mod.load(path)


def test_fresh_yaml_round_trips_exactly():
    cfg = config_mod.preset("cpu-demo")
    assert config_mod.validate(yaml.safe_load(config_mod.to_yaml(cfg)), check_paths=False) == (cfg, [])


def test_save_keeps_the_users_comments_and_order(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text("# my experiment\nlora:\n  r: 8   # small on purpose\nmodel:\n  name: demo\n")
    cfg = config_mod.load(path, check_paths=False)
    cfg["lora"]["r"] = 64
    config_mod.save(path, cfg)
    text = path.read_text()
    assert text.startswith("# my experiment\nlora:\n  r: 64")
    assert "# small on purpose" in text
    assert text.index("lora:") < text.index("model:")
    assert config_mod.load(path, check_paths=False) == cfg


def test_diff_against_defaults_lists_changed_knobs():
    cfg = config_mod.defaults()
    cfg["lora"]["r"] = 64
    cfg["train"]["learning_rate"] = 1e-4
    assert config_mod.diff(cfg) == [("lora.r", 16, 64), ("train.learning_rate", 2e-4, 1e-4)]


def test_resolve_makes_paths_absolute(tmp_path: Path):
    cfg = config_mod.defaults()
    resolved = config_mod.resolve(cfg, tmp_path)
    assert resolved["data"]["corpus"] == str((tmp_path / "corpus").resolve())
    assert cfg["data"]["corpus"] == "corpus"  # the original is untouched
