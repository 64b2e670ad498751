"""The command line's loose ends: mistyped commands, the workspace of `open`, `config new` and `config check`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command, write_corpus
from stylelora_tui import config as config_mod
from stylelora_tui.cli.main import build_parser, main


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stylelora_command(*args), capture_output=True, text=True, timeout=60, cwd=cwd, env=env or cli_env(),
        stdin=subprocess.DEVNULL,
    )


def test_a_mistyped_command_is_named_not_made_a_workspace(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["trian"]) == 2
    assert "unknown command 'trian' (did you mean train?)" in capsys.readouterr().err
    assert not (tmp_path / "trian").exists()
    assert main(["xyzzy"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'xyzzy'" in err and "did you mean" not in err and "stylelora-tui open xyzzy" in err
    assert list(tmp_path.iterdir()) == []


def test_a_bare_word_still_opens_an_existing_folder_or_a_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a folder")
    # A path goes to `open` (which then refuses a file): routed as a workspace, not as a command.
    assert main(["./notes.txt"]) == 2
    assert "is a file, not a workspace folder" in capsys.readouterr().err
    (tmp_path / "trian").mkdir()
    args = build_parser("open").parse_args(["open", "trian"])
    from stylelora_tui.cli.app import build_app

    app = build_app(args)
    assert app.workspace.root == (tmp_path / "trian").resolve()


def test_open_honours_stylelora_workspace(tmp_path, monkeypatch):
    from stylelora_tui.cli.app import build_app

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("STYLELORA_WORKSPACE", str(tmp_path / "chosen"))
    app = build_app(build_parser("open").parse_args(["open"]))
    assert app.workspace.root == (tmp_path / "chosen").resolve()
    assert (tmp_path / "chosen" / "configs").is_dir() and not (elsewhere / "configs").exists()
    # A folder given on the command line still wins.
    app = build_app(build_parser("open").parse_args(["open", str(elsewhere)]))
    assert app.workspace.root == elsewhere.resolve()


def test_config_new_writes_a_commented_preset_and_refuses_to_overwrite(tmp_path):
    result = run_cli("config", "new", "mine", "--preset", "cpu-demo", "-w", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "configs" / "mine.yaml"
    assert result.stdout.strip() == str(path.resolve())
    text = path.read_text()
    assert "preset 'cpu-demo'" in text and "# Hub id, local folder" in text  # each key keeps its help
    assert config_mod.load(path, check_paths=False) == config_mod.validate(config_mod.preset("cpu-demo"))[0]

    path.write_text("# my edits\n" + text)
    again = run_cli("config", "new", "mine", "-w", str(tmp_path), cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert path.read_text().startswith("# my edits")
    forced = run_cli("config", "new", "mine", "--preset", "lab", "--force", "-w", str(tmp_path), cwd=tmp_path)
    assert forced.returncode == 0
    assert config_mod.load(path, check_paths=False)["model"]["name"] == config_mod.preset("lab")["model"]["name"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", ""])
def test_config_new_refuses_names_that_leave_configs(tmp_path, name):
    workspace = tmp_path / "ws"
    result = run_cli("config", "new", name, "-w", str(workspace), cwd=tmp_path)
    assert result.returncode == 2
    assert f"config name {name!r}" in result.stderr
    assert not any(path.suffix == ".yaml" for path in tmp_path.rglob("*"))


def test_config_check_prints_one_line_per_problem_as_the_form_sees_them(tmp_path):
    bad = tmp_path / "configs" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text("model:\n  name: demo\nlora:\n  r: 0\n  lora_dropuot: 0.1\ntrain:\n  learning_rate: fast\n")
    result = run_cli("config", "check", str(bad), "-w", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{bad}:4: lora.r: must be > 0, got 0" in lines
    assert any(line.startswith(f"{bad}:5: lora.lora_dropuot: unknown key") for line in lines)
    assert any(line.startswith(f"{bad}:7: train.learning_rate: ") for line in lines)
    # The same problems, word for word, as the validation the app's form runs.
    with pytest.raises(config_mod.ConfigError) as caught:
        config_mod.load(bad, workspace=tmp_path)
    assert lines == [str(problem) for problem in caught.value.problems]


def test_config_check_checks_a_sweep_grid_as_the_sweep_does(tmp_path):
    write_corpus(tmp_path / "corpus")
    assert run_cli("config", "new", "grid", "--preset", "cpu-demo", "-w", str(tmp_path), cwd=tmp_path).returncode == 0
    path = tmp_path / "configs" / "grid.yaml"
    text = path.read_text()
    path.write_text(text + "sweep:\n  lora.r: [8, 16]\n  train.learning_rate: [1.0e-4, 2.0e-4, 4.0e-4]\n")
    result = run_cli("config", "check", str(path), "-w", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"sweep: 6 runs over lora.r, train.learning_rate (start it with: stylelora-tui sweep {path})" in result.stdout
    # A bad value in the grid is named with its line, as `sweep` names it; a grid point the config refuses too.
    path.write_text(text + "sweep:\n  lora.r: [8, 0]\n")
    result = run_cli("config", "check", str(path), "-w", str(tmp_path), cwd=tmp_path)
    line = len(text.splitlines()) + 2
    assert result.returncode == 1 and f"{path}:{line}: sweep.lora.r: value 0: must be > 0, got 0" in result.stdout
    path.write_text(text + "sweep:\n  lora.use_dora: [false, true]\n  lora.method: [lora, ia3]\n")
    result = run_cli("config", "check", str(path), "-w", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1 and "at the grid point lora.method=ia3, lora.use_dora=True: applies to lora and loraplus only" in result.stdout


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """`stylelora-tui ... | head`: the reader left; exit 141 as a shell command would, no traceback."""
    import os

    write_corpus(tmp_path / "corpus")
    assert run_cli("config", "new", "piped", "--preset", "cpu-demo", "-w", str(tmp_path), cwd=tmp_path).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        done = subprocess.run(stylelora_command("config", "check", "configs/piped.yaml"), cwd=tmp_path, env=cli_env(),
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == "", done.stderr


def test_config_check_is_quiet_and_0_on_a_clean_config(tmp_path):
    write_corpus(tmp_path / "corpus")
    assert run_cli("config", "new", "demo-run", "--preset", "cpu-demo", "-w", str(tmp_path), cwd=tmp_path).returncode == 0
    result = run_cli("config", "check", "configs/demo-run.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("configs/demo-run.yaml: ok: model demo")
    assert all(not line.startswith("configs/") for line in lines[1:])  # no problem lines: the rest is the time table
    assert lines[1].startswith("Time and cost: 240 steps")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    result = run_cli("config", "check", str(broken), cwd=tmp_path)
    assert result.returncode == 1 and "not valid YAML" in result.stdout and "Traceback" not in result.stderr
    missing = run_cli("config", "check", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.yaml does not exist" in missing.stderr
