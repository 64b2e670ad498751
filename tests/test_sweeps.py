"""Sweeps: the grid is checked like the config, and a sweep runs (and resumes) as a queue of ordinary runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command, write_tiny_config
from stylelora_tui import config as config_mod
from stylelora_tui.runs.events import eval_history, read_events
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace
from stylelora_tui.sweeps.grid import apply, check_grid, points, run_name
from stylelora_tui.sweeps.sweep import Sweep, load_sweep


def sweep_file(workspace: Path, tiny_model: Path, grid: str, name: str = "tiny", **train) -> Path:
    path = write_tiny_config(workspace, tiny_model, name=name, backend="peft", load_in_4bit=False, **train)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(grid)
    return path


def cli(workspace: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(stylelora_command(*args, "-w", str(workspace)), capture_output=True, text=True,
                          env=cli_env(), timeout=timeout)


# --------------------------------------------------------------------------- the grid


def test_a_grid_is_coerced_by_the_config_rules_and_expands_to_every_combination() -> None:
    grid, problems = check_grid({"lora.r": [8, 16], "train.learning_rate": ["1e-4", 2e-4],
                                 "lora.target_modules": [["q_proj", "v_proj"]]})
    assert problems == []
    assert grid["train.learning_rate"] == [1e-4, 2e-4]  # text read as a number, as in the config
    combos = points(grid)
    assert len(combos) == 4 and {c["lora.r"] for c in combos} == {8, 16}
    config = apply(config_mod.defaults(), combos[0])
    assert config["lora"]["target_modules"] == ["q_proj", "v_proj"] and config["lora"]["r"] == 8
    assert run_name("lr-sweep", 0, {"lora.r": 8, "train.learning_rate": 1e-4}) == "lr-sweep-01-r8-lr1e-4"
    assert run_name("s", 11, {"train.learning_rate": 2.5e-4, "lora.use_dora": True}) == "s-12-dora-lr2.5e-4"
    assert run_name("s", 0, {"lora.use_rslora": False, "lora.method": "ia3"}) == "s-01-ia3-norslora"


@pytest.mark.parametrize(
    ("grid", "key", "words"),
    [
        ({"lora.r": [0, 8]}, "sweep.lora.r", ["value 0", "must be > 0"]),
        ({"lora.rr": [8]}, "sweep.lora.rr", ["unknown config key", "lora.r"]),
        ({"r": [8]}, "sweep.r", ["unknown config key"]),
        ({"lora.r": 8}, "sweep.lora.r", ["non-empty list"]),
        ({"lora.r": []}, "sweep.lora.r", ["non-empty list"]),
        ({"lora.r": [8, 8]}, "sweep.lora.r", ["twice"]),
        ({"lora.method": ["lora", "lorax"]}, "sweep.lora.method", ["lorax", "must be one of"]),
        ({"lora.r": list(range(1, 30)), "train.seed": list(range(10))}, "sweep", ["290 points"]),
        ([8, 16], "sweep", ["mapping of dotted config keys"]),
    ],
)
def test_a_bad_grid_is_refused_naming_the_key_and_value(grid, key, words) -> None:
    _, problems = check_grid(grid)
    assert problems and problems[0].key == key, problems
    assert all(word in problems[0].message for word in words), problems[0].message


def test_config_check_accepts_a_sweep_and_reports_a_bad_one_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    config_mod.save(path, config_mod.defaults())
    base = path.read_text(encoding="utf-8")
    path.write_text(base + "sweep:\n  lora.r: [8, 16]\n", encoding="utf-8")
    config_mod.load(path, check_paths=False)  # a sweep key does not break a config
    path.write_text(base + "sweep:\n  lora.r: [8, 0]\n", encoding="utf-8")
    with pytest.raises(config_mod.ConfigError) as caught:
        config_mod.load(path, check_paths=False)
    (problem,) = caught.value.problems
    assert problem.key == "sweep.lora.r" and "value 0" in str(problem)
    assert problem.line == len(base.splitlines()) + 2  # the lora.r line under sweep:


def test_each_grid_point_gets_the_configs_cross_checks(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    config_mod.save(path, config_mod.defaults())
    path.write_text(path.read_text(encoding="utf-8") + "sweep:\n  lora.method: [lora, ia3]\n  lora.use_dora: [true]\n",
                    encoding="utf-8")
    with pytest.raises(config_mod.ConfigError) as caught:
        load_sweep(path, check_paths=False)
    assert "lora.use_dora" in str(caught.value) and "lora.method=ia3" in str(caught.value)
    assert "lora.method=lora" not in str(caught.value)


def test_a_config_without_a_sweep_cannot_start_one(workspace: Path, tiny_model: Path) -> None:
    path = write_tiny_config(workspace, tiny_model, backend="peft", load_in_4bit=False)
    result = cli(workspace, "sweep", str(path), "--detach")
    assert result.returncode == 2 and "no sweep: mapping" in result.stderr and "Traceback" not in result.stderr
    assert not (workspace / "sweeps").exists()
    result = cli(workspace, "sweep", "status")
    assert result.returncode == 2 and "no sweeps in" in result.stderr


def test_swept_paths_are_checked_per_point_and_stored_absolute(workspace: Path, tiny_model: Path) -> None:
    from conftest import write_corpus

    from stylelora_tui.sweeps.sweep import create_sweep

    write_corpus(workspace / "corpus-b")
    path = sweep_file(workspace, tiny_model, "sweep:\n  data.corpus: [corpus, corpus-b, corpus-c]\n")
    with pytest.raises(config_mod.ConfigError) as caught:
        create_sweep(Workspace(workspace), path)
    assert "data.corpus=corpus-c" in str(caught.value) and "does not exist" in str(caught.value)
    assert "data.corpus=corpus-b" not in str(caught.value) and not (workspace / "sweeps").exists()
    path = sweep_file(workspace, tiny_model, "sweep:\n  data.corpus: [corpus, corpus-b]\n")
    sweep = create_sweep(Workspace(workspace), path, "paths")
    _, grid = sweep.load()
    assert grid["data.corpus"] == [str((workspace / "corpus").resolve()), str((workspace / "corpus-b").resolve())]


def test_optuna_loads_only_when_a_sweep_is_read_never_with_the_config_or_the_cli() -> None:
    code = ("import sys; import stylelora_tui.config, stylelora_tui.cli.main, stylelora_tui.cli.sweep, "
            "stylelora_tui.sweeps.sweep, stylelora_tui.sweeps.runner; "
            "print(sorted(m for m in ('optuna', 'sqlalchemy', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


# --------------------------------------------------------------------------- real sweeps


def wait_for(predicate, timeout: float = 240, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(interval)


def status_json(workspace: Path, name: str) -> dict:
    result = cli(workspace, "sweep", "status", name, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def final_eval_loss(run: Run) -> float:
    return eval_history(run.events())[-1]["eval_loss"]


GRID = "sweep:\n  lora.r: [4, 8]\n"


def first_run_is_training(ws: Workspace) -> bool:
    runs = ws.runs()
    return bool(runs) and any(e["type"] == "log" for e in read_events(runs[0].events_path))


@pytest.mark.slow
def test_a_two_trial_sweep_runs_to_the_end_detached_and_lists_its_trials_best_first(workspace, tiny_model) -> None:
    path = sweep_file(workspace, tiny_model, GRID, max_steps=4, save_steps=2, sample_steps=-1)
    result = cli(workspace, "sweep", str(path), "--name", "grid", "--detach")
    assert result.returncode == 0, result.stderr
    sweep = Sweep(Path(result.stdout.strip()))
    assert sweep.path == workspace / "sweeps" / "grid"
    twice = cli(workspace, "sweep", "resume", "grid")
    assert twice.returncode == 2 and "already running" in twice.stderr, twice.stderr
    same_name = cli(workspace, "sweep", str(path), "--name", "grid", "--detach")
    assert same_name.returncode == 2 and "sweep resume grid" in same_name.stderr
    wait_for(lambda: not sweep.runner_alive())
    report = status_json(workspace, "grid")
    assert report["state"] == "completed", (sweep.log_path.read_text(), report)
    trials = report["trials"]
    assert sorted(t["params"]["lora.r"] for t in trials) == [4, 8]
    assert [t["eval_loss"] for t in trials] == sorted(t["eval_loss"] for t in trials)  # best first
    for trial in trials:
        run = Workspace(workspace).find_run(trial["run"])
        assert trial["state"] == "complete" and run.state == "completed"
        assert trial["eval_loss"] == pytest.approx(final_eval_loss(run))  # the objective: the last held-out loss
        assert run.config()["lora"]["r"] == trial["params"]["lora.r"]
        assert trial["run"] == f"grid-0{trial['number']}-r{trial['params']['lora.r']}"
    # The study is done: a resume refuses, and nothing ran twice.
    again = cli(workspace, "sweep", "resume", "grid")
    assert again.returncode == 2 and "already completed" in again.stderr
    assert len(Workspace(workspace).runs()) == 2
    table = cli(workspace, "sweep", "status", "grid")
    assert table.returncode == 0 and "completed" in table.stdout and trials[0]["run"] in table.stdout


@pytest.mark.slow
def test_a_stopped_sweep_resumes_its_run_and_finishes_the_grid_without_running_a_trial_twice(workspace, tiny_model) -> None:
    # 60 steps: on a quiet machine 8 tiny steps could end before the stop arrived.
    path = sweep_file(workspace, tiny_model, GRID, max_steps=60, save_steps=10, sample_steps=-1)
    result = cli(workspace, "sweep", str(path), "--name", "halt", "--detach")
    assert result.returncode == 0, result.stderr
    sweep = Sweep(Path(result.stdout.strip()))
    ws = Workspace(workspace)
    wait_for(lambda: first_run_is_training(ws))
    stopped = cli(workspace, "sweep", "stop", "halt")
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not sweep.runner_alive(), timeout=120)
    (first,) = ws.runs()
    assert sweep.state() == "stopped" and first.state == "stopped" and first.latest_checkpoint() is not None
    report = status_json(workspace, "halt")
    assert [t["state"] for t in report["trials"]] == ["running"]
    assert cli(workspace, "sweep", "stop", "halt").returncode == 1  # nothing to stop now

    resumed = cli(workspace, "sweep", "resume", "halt", timeout=300)  # follows to the end
    assert resumed.returncode == 0, resumed.stderr + sweep.log_path.read_text()
    assert f"resumed run {first.name}" in resumed.stdout
    runs = ws.runs()
    assert len(runs) == 2 and all(run.state == "completed" for run in runs)
    assert sum(e["type"] == "resume" for e in read_events(first.events_path)) == 1
    report = status_json(workspace, "halt")
    assert report["state"] == "completed"
    assert sorted(t["params"]["lora.r"] for t in report["trials"]) == [4, 8]
    assert all(t["state"] == "complete" and t["eval_loss"] is not None for t in report["trials"])


@pytest.mark.slow
def test_a_killed_runner_leaves_its_run_training_and_a_resume_waits_for_it_then_finishes(workspace, tiny_model) -> None:
    # 40 steps, so the kill lands during the first trial even on a quiet machine.
    path = sweep_file(workspace, tiny_model, GRID, max_steps=40, save_steps=10, sample_steps=-1)
    result = cli(workspace, "sweep", str(path), "--name", "crash", "--detach")
    assert result.returncode == 0, result.stderr
    sweep = Sweep(Path(result.stdout.strip()))
    ws = Workspace(workspace)
    wait_for(lambda: first_run_is_training(ws))
    os.kill(sweep.read_status()["pid"], signal.SIGKILL)  # a crash: no chance to record anything
    wait_for(lambda: not sweep.runner_alive(), timeout=30)
    assert status_json(workspace, "crash")["state"] == "failed"
    (first,) = ws.runs()
    resumed = cli(workspace, "sweep", "resume", "crash", timeout=300)
    assert resumed.returncode == 0, resumed.stderr + sweep.log_path.read_text()
    runs = ws.runs()
    assert len(runs) == 2 and all(run.state == "completed" for run in runs)
    assert not any(e["type"] == "resume" for e in read_events(first.events_path))  # it trained on, unbroken
    assert f"run {first.name} is still training; waiting for it" in resumed.stdout  # in its slot (its GPU) again
    report = status_json(workspace, "crash")
    assert report["state"] == "completed" and [t["state"] for t in report["trials"]] == ["complete", "complete"]


@pytest.mark.slow
def test_a_failing_trial_is_recorded_as_failed_and_the_sweep_goes_on(workspace, tiny_model) -> None:
    # No instruction record fits 16 tokens: that run fails at once, with the trainer's reason.
    path = sweep_file(workspace, tiny_model, "sweep:\n  model.max_seq_length: [16, 128]\n",
                      max_steps=2, save_steps=2, sample_steps=-1)
    result = cli(workspace, "sweep", str(path), "--name", "mixed", timeout=300)  # follows to the end
    assert result.returncode == 0, result.stderr
    assert "failed: run failed: no training record fits model.max_seq_length=16" in result.stdout
    assert "held-out loss" in result.stdout
    report = status_json(workspace, "mixed")
    assert report["state"] == "completed"
    good, bad = report["trials"]  # a loss sorts before none
    assert good["state"] == "complete" and good["eval_loss"] is not None and good["params"]["model.max_seq_length"] == 128
    assert bad["state"] == "fail" and bad["eval_loss"] is None and bad["run_state"] == "failed"


# --------------------------------------------------------------------------- the sweep table (hand-made runs)


def hand_made_sweep(workspace: Path, name: str, trials: list[dict]) -> Sweep:
    """A sweep folder whose Optuna study holds ``trials`` (each: r, run, and optionally value or state),
    and each trial's run folder with ``events`` written by the real event writer: ``[(type, fields), ...]``."""
    import yaml

    from conftest import write_corpus
    from stylelora_tui.runs.control import create_run
    from stylelora_tui.runs.events import EventWriter
    from stylelora_tui.sweeps.sweep import open_study

    if not (workspace / "corpus").exists():
        write_corpus(workspace / "corpus")
    cfg = config_mod.defaults()
    cfg["data"]["corpus"] = str(workspace / "corpus")
    sweep = Sweep(workspace / "sweeps" / name)
    sweep.path.mkdir(parents=True)
    grid = {"lora.r": [t["r"] for t in trials]}
    (sweep.path / "sweep.yaml").write_text(config_mod.to_yaml(cfg) + yaml.safe_dump({"sweep": grid}, default_flow_style=None),
                                           encoding="utf-8")
    study = open_study(sweep)
    for spec in trials:
        study.enqueue_trial({"lora.r": spec["r"]})
        trial = study.ask()
        trial.suggest_categorical("lora.r", grid["lora.r"])
        trial.set_user_attr("run", spec["run"])
        run = create_run(Workspace(workspace), {**cfg, "lora": {**cfg["lora"], "r": spec["r"]}}, name=spec["run"])
        with EventWriter(run.events_path) as writer:
            for kind, fields in spec.get("events", []):
                writer.write(kind, **fields)
        run.update_status(state=spec.get("run_state", "completed"), created_at=1000.0, ended_at=5000.0)
        if "value" in spec:
            from optuna.trial import TrialState

            try:
                study.tell(trial.number, spec["value"], state=TrialState.COMPLETE if spec["value"] is not None else TrialState.FAIL)
            except RuntimeError:  # GridSampler's end-of-grid stop request, as in the runner
                pass
    return sweep


def logs(losses: list[float], start: float, *, peak: int = 0, kind: str = "rss") -> list[tuple[str, dict]]:
    return [("log", {"step": i + 1, "loss": loss, "time": start + i + 1, "memory_kind": kind,
                     "peak_memory_bytes": peak + i, "memory_bytes": peak // 2}) for i, loss in enumerate(losses)]


def three_trials(workspace: Path, name: str = "lab") -> Sweep:
    """Trial 1: stopped and resumed (two sessions), live-sample style; trial 2: the best, with a compare.json;
    trial 3: still training, no eval yet."""
    first = [("start", {"step": 0, "time": 100.0}), *logs([3.0, 2.6], 100.0, peak=2**30),
             ("eval", {"step": 2, "eval_loss": 2.0, "time": 103.0}), ("end", {"state": "stopped", "time": 110.0}),
             ("resume", {"from_step": 2, "time": 500.0}), ("start", {"step": 2, "time": 501.0}),
             *logs([2.5, 2.1], 501.0, peak=3 * 2**30), ("eval", {"step": 4, "eval_loss": 1.5, "time": 505.0}),
             ("sample", {"step": 4, "style_distance": 0.9, "time": 506.0}),
             ("sample", {"step": 4, "style_distance": 0.8, "time": 507.0}),  # the same step again: this one wins
             ("end", {"state": "completed", "time": 530.0, "memory_kind": "rss", "peak_memory_bytes": 3 * 2**30 + 5})]
    second = [("start", {"step": 0, "time": 0.0}), *logs([2.0, 1.4], 0.0, peak=2**29, kind="gpu"),
              ("eval", {"step": 2, "eval_loss": 1.2, "time": 3.0}), ("eval", {"step": 3, "eval_loss": 1.3, "time": 4.0}),
              ("sample", {"step": 3, "style_distance": 1.1, "time": 5.0}), ("end", {"state": "completed", "time": 65.0})]
    third = [("start", {"step": 0, "time": 0.0}), *logs([3.3], 0.0)]
    sweep = hand_made_sweep(workspace, name, [
        {"r": 4, "run": f"{name}-01-r4", "events": first, "value": 1.5},
        {"r": 8, "run": f"{name}-02-r8", "events": second, "value": 1.3},
        {"r": 16, "run": f"{name}-03-r16", "events": third, "run_state": "stopped"},
    ])
    compare = {"style": {"variants": {"base": {"delta": 1.9}, f"{name}-02-r8": {"delta": 0.7}}}}
    (workspace / "runs" / f"{name}-02-r8" / "compare.json").write_text(json.dumps(compare), encoding="utf-8")
    return sweep


def test_the_sweep_table_folds_each_runs_figures_and_marks_the_best(tmp_path: Path) -> None:
    from stylelora_tui.sweeps.table import sweep_table

    rows = {row["number"]: row for row in sweep_table(three_trials(tmp_path))}
    first, second, third = rows[1], rows[2], rows[3]
    assert first["params"] == {"lora.r": 4} and first["state"] == "complete" and first["run_state"] == "completed"
    assert first["final_train_loss"] == 2.1 and first["best_eval_loss"] == 1.5
    assert (first["style_distance"], first["style_source"]) == (0.8, "sample")
    assert first["duration_s"] == 10.0 + 30.0  # two sessions; the time it sat stopped is not training
    assert (first["peak_memory_bytes"], first["memory_kind"]) == (3 * 2**30 + 5, "rss")
    # The best eval loss is the lowest one, not the last (the objective Optuna got).
    assert second["best_eval_loss"] == 1.2 and second["objective"] == 1.3
    assert (second["style_distance"], second["style_source"]) == (0.7, "compare")  # compare.json wins over samples
    assert (second["peak_memory_bytes"], second["memory_kind"]) == (2**29 + 1, "gpu")
    assert second["duration_s"] == 65.0
    assert third["state"] == "running" and third["run_state"] == "stopped"
    assert third["best_eval_loss"] is None and third["style_distance"] is None and third["style_source"] is None
    assert [row["number"] for row in rows.values() if row["best"]] == [2]


def test_the_table_reads_a_finished_run_again_once_its_files_change(tmp_path: Path) -> None:
    from stylelora_tui.runs.events import EventWriter
    from stylelora_tui.sweeps.table import sweep_table

    sweep = three_trials(tmp_path)
    assert sweep_table(sweep)[0]["style_source"] == "sample"
    first = tmp_path / "runs" / "lab-01-r4"
    compare = {"style": {"variants": {"lab-01-r4": {"delta": 0.5}}}}
    (first / "compare.json").write_text(json.dumps(compare), encoding="utf-8")
    row = sweep_table(sweep)[0]
    assert (row["style_distance"], row["style_source"]) == (0.5, "compare")
    with EventWriter(first / "events.jsonl") as writer:  # a late eval (e.g. an `eval` re-run): a new best
        writer.write("eval", step=4, eval_loss=1.0)
    rows = sweep_table(sweep)
    assert rows[0]["best_eval_loss"] == 1.0 and [r["number"] for r in rows if r["best"]] == [1]


def test_a_trial_cut_short_by_its_time_budget_is_marked_in_the_table(tmp_path: Path) -> None:
    from stylelora_tui.runs.run import Run
    from stylelora_tui.sweeps.table import fmt_steps, sweep_table, text_table

    full = [("start", {"step": 0, "time": 0.0}), *logs([3.0, 2.0], 0.0), ("end", {"state": "completed", "time": 9.0})]
    cut = [("start", {"step": 0, "time": 0.0}), *logs([3.1], 0.0), ("budget", {"step": 1, "max_minutes": 5.0}),
           ("end", {"state": "completed", "time": 300.0})]
    sweep = hand_made_sweep(tmp_path, "timed", [{"r": 4, "run": "timed-01-r4", "events": full, "value": 2.0},
                                                {"r": 8, "run": "timed-02-r8", "events": cut, "value": 2.5}])
    Run(tmp_path / "runs" / "timed-01-r4").update_status(step=30, total_steps=30)
    Run(tmp_path / "runs" / "timed-02-r8").update_status(step=8, total_steps=30)
    rows = sweep_table(sweep)
    assert [(row["steps"], row["total_steps"], row["budget_stop"]) for row in rows] == [(30, 30, False), (8, 30, True)]
    assert [fmt_steps(row) for row in rows] == ["30/30", "8/30!"]
    text = text_table(rows)
    assert "8/30!" in text and "! ended at its time budget (train.max_minutes)" in text
    assert "time budget" not in text_table(rows[:1])


def test_sweep_rows_sort_by_any_column_with_missing_values_last() -> None:
    from stylelora_tui.sweeps.table import SORT_KEYS, mark_best, sort_rows

    rows = [{"number": n, "run": f"s-{n}", "params": {"lora.r": r}, "best_eval_loss": loss, "duration_s": secs}
            for n, r, loss, secs in ((1, 16, None, 30.0), (2, 8, 1.5, None), (3, 4, 1.2, 10.0), (4, 32, 1.2, 20.0))]
    order = lambda key, **kw: [row["number"] for row in sort_rows(rows, key, **kw)]  # noqa: E731
    assert order("best_eval_loss") == [3, 4, 2, 1]  # ties by trial number, none last
    assert order("best_eval_loss", descending=True) == [2, 3, 4, 1]  # none last even reversed
    assert order("duration_s") == [3, 4, 1, 2]
    assert order("params") == [1, 4, 3, 2]  # by text: "16" < "32" < "4" < "8"
    assert "peak_memory_bytes" in SORT_KEYS and order("peak_memory_bytes") == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="no column 'loss'"):
        sort_rows(rows, "loss")
    assert [row["number"] for row in mark_best(rows) if row["best"]] == [3]  # a tie goes to the earlier trial
    assert not any(row["best"] for row in mark_best([{"number": 1, "best_eval_loss": None}]))


def test_runs_sweep_prints_the_table_and_its_json(tmp_path: Path) -> None:
    three_trials(tmp_path)
    result = cli(tmp_path, "runs", "--sweep", "lab", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["number"] for row in rows] == [1, 2, 3] and [row["best"] for row in rows] == [False, True, False]
    for field in ("run", "params", "state", "final_train_loss", "best_eval_loss", "style_distance", "style_source",
                  "duration_s", "peak_memory_bytes", "memory_kind"):
        assert field in rows[0], field
    result = cli(tmp_path, "runs", "--sweep", "lab", "--sort", "final_train_loss", "--descending")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1 if line.startswith("*") else 0] for line in lines[1:4]] == ["3", "1", "2"]
    best = [line for line in lines if line.startswith("*")][0]
    assert "lab-02-r8" in best and "1.2000" in best and "0.700c" in best and "512M gpu" in best and "r=8" in best
    status = cli(tmp_path, "sweep", "status", "lab")
    assert status.returncode == 0 and "* " in status.stdout and "lab-02-r8" in status.stdout
    bad = cli(tmp_path, "runs", "--sweep", "lab", "--sort", "loss")
    assert bad.returncode == 2 and "--sort loss: no such column" in bad.stderr and "best_eval_loss" in bad.stderr
    missing = cli(tmp_path, "runs", "--sweep", "nope")
    assert missing.returncode == 2 and "no sweep 'nope'" in missing.stderr and "lab" in missing.stderr
    assert "Traceback" not in bad.stderr + missing.stderr


# --------------------------------------------------------------------------- several trials at once


def test_each_parallel_slot_gets_its_own_gpu_and_none_without_gpus() -> None:
    from stylelora_tui.runs.run import RunError
    from stylelora_tui.sweeps.sweep import check_parallel, gpu_ids, slot_env

    four = {"CUDA_VISIBLE_DEVICES": "2,3, 5,7", "PATH": "/bin"}
    gpus = gpu_ids(four)
    assert gpus == ["2", "3", "5", "7"]
    assert [slot_env(slot, gpus, four)["CUDA_VISIBLE_DEVICES"] for slot in range(4)] == ["2", "3", "5", "7"]
    assert slot_env(1, gpus, four)["PATH"] == "/bin"  # the rest of the environment is kept
    assert gpu_ids({"CUDA_VISIBLE_DEVICES": "-1"}) == [] and slot_env(0, [], four) is None  # CPU: no pinning
    check_parallel(4, four)
    check_parallel(3, {"CUDA_VISIBLE_DEVICES": ""})  # no GPU: any number, all on the CPU
    with pytest.raises(RunError, match=r"4 GPU\(s\) visible \(2,3,5,7\).*at most --parallel 4"):
        check_parallel(5, four)
    with pytest.raises(RunError, match="1 or more"):
        check_parallel(0, four)


def test_a_bad_parallel_is_refused_before_any_sweep_folder(workspace: Path, tiny_model: Path) -> None:
    path = sweep_file(workspace, tiny_model, GRID)
    result = cli(workspace, "sweep", str(path), "--parallel", "0", "--detach")
    assert result.returncode == 2 and "--parallel 0" in result.stderr and "Traceback" not in result.stderr
    assert not (workspace / "sweeps").exists()


def training_runs(ws: Workspace) -> int:
    return sum(any(e["type"] == "log" for e in read_events(run.events_path)) and run.is_active() for run in ws.runs())


@pytest.mark.slow
def test_a_parallel_sweep_trains_two_trials_at_once_stops_both_and_resumes_to_the_end(workspace, tiny_model) -> None:
    path = sweep_file(workspace, tiny_model, "sweep:\n  lora.r: [4, 8, 16]\n", max_steps=60, save_steps=10, sample_steps=-1)
    env = {**cli_env(), "CUDA_VISIBLE_DEVICES": ""}  # a CPU box even on a GPU machine: no pinning
    result = subprocess.run(stylelora_command("sweep", str(path), "--name", "two", "--parallel", "2", "--detach",
                                              "-w", str(workspace)), capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    sweep = Sweep(Path(result.stdout.strip()))
    ws = Workspace(workspace)
    wait_for(lambda: training_runs(ws) == 2)  # two trials training at the same time
    assert len(ws.runs()) == 2 and sorted(sweep.read_status()["current_runs"]) == sorted(r.name for r in ws.runs())
    assert cli(workspace, "sweep", "stop", "two").returncode == 0
    wait_for(lambda: not sweep.runner_alive(), timeout=120)
    report = status_json(workspace, "two")
    assert report["state"] == "stopped" and report["parallel"] == 2, sweep.log_path.read_text()
    assert [t["state"] for t in report["trials"]] == ["running", "running"]  # both kept for the resume
    first_two = ws.runs()
    assert all(run.state == "stopped" and run.latest_checkpoint() is not None for run in first_two)

    resumed = subprocess.run(stylelora_command("sweep", "resume", "two", "-w", str(workspace)), capture_output=True,
                             text=True, env=env, timeout=400)  # follows to the end
    assert resumed.returncode == 0, resumed.stderr + sweep.log_path.read_text()
    runs = ws.runs()
    assert len(runs) == 3 and all(run.state == "completed" for run in runs)
    for run in first_two:  # each went on from its checkpoint, once
        assert f"resumed run {run.name}" in resumed.stdout
        assert sum(e["type"] == "resume" for e in read_events(run.events_path)) == 1
    report = status_json(workspace, "two")
    assert report["state"] == "completed" and report["current_runs"] == []
    assert sorted(t["params"]["lora.r"] for t in report["trials"]) == [4, 8, 16]
    assert all(t["state"] == "complete" for t in report["trials"])
    assert sum(row["best"] for row in report["table"]) == 1


def test_a_grid_typed_one_key_a_line_is_read_and_checked_naming_its_line() -> None:
    from stylelora_tui.sweeps.grid import parse_grid_text

    grid, problems = parse_grid_text("# ranks\nlora.r: 8, 16\n\ntrain.learning_rate: 1e-4, 2e-4\nlora.use_dora: true, no\n"
                                     "lora.target_modules: q_proj v_proj | q_proj,k_proj\n")
    assert problems == []
    assert grid == {"lora.r": [8, 16], "train.learning_rate": [1e-4, 2e-4], "lora.use_dora": [True, False],
                    "lora.target_modules": ["q_proj,v_proj", "q_proj,k_proj"]}  # as check_grid keeps lists
    assert apply(config_mod.defaults(), points(grid)[0])["lora"]["target_modules"] == ["q_proj", "v_proj"]
    for text, line, words in (
        ("lora.r: 8\nlora.r 16", 2, "write a key, a colon"),
        ("lora.r: 8\n\nlora.r: 16", 3, "given twice (also on line 1)"),
        ("\ntrain.learning_rate: 1e-4, fast", 2, "value 'fast': must be a number"),
        ("lora.rr: 8", 1, "did you mean 'lora.r'"),
        ("lora.r:", 1, "non-empty list"),
    ):
        grid, problems = parse_grid_text(text)
        assert grid == {} or problems, text
        assert problems and problems[0].line == line and words in str(problems[0]), (text, problems)
    assert "no values to sweep" in str(parse_grid_text("# nothing\n")[1][0])
