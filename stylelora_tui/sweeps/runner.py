"""The sweep runner process: ``python -m stylelora_tui.sweeps.runner SWEEP_FOLDER``.

Optuna's GridSampler hands out the grid's points as trials (ask), each trained
as an ordinary run, one after another, or up to ``parallel`` at once (the
sweep's status.json; several asks before the tells), each pinned to a GPU of
its own through CUDA_VISIBLE_DEVICES when there are GPUs; the run's last
held-out loss is told back as the trial's value. The study lives in the sweep folder's journal file,
so a stopped or crashed runner resumes where it was: a trial still marked
running has its run resumed from its checkpoint, finished trials are never
run again. SIGTERM (``sweep stop``) stops the runs in training, which checkpoint,
and ends the runner as "stopped".
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from stylelora_tui.runs import control
from stylelora_tui.runs.events import eval_history
from stylelora_tui.runs.run import Run, RunError, process_start_time, timestamp
from stylelora_tui.sweeps.grid import apply, points, run_name
from stylelora_tui.sweeps.sweep import Sweep, gpu_ids, open_study, slot_env


@dataclass
class Active:
    """A trial whose run is training in a slot."""

    number: int
    name: str
    run: Run
    slot: int
    asked_to_stop: bool = False


class Runner:
    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.config, self.grid = sweep.load()
        self.study = open_study(sweep, self.grid)
        self.parallel = max(1, int(sweep.read_status().get("parallel") or 1))
        self.gpus = gpu_ids()
        self.stopping = False

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def on_sigterm(self, *_: Any) -> None:
        # Only a flag: the run's lock may be held by the code this interrupts; the wait loop stops the runs.
        self.stopping = True

    def main(self) -> str:
        """Keep up to ``parallel`` trials training until the grid is done; the study says what is left.

        Trials left running by a stop or a crash come first: their runs continue,
        their points are never started again.
        """
        from optuna.trial import TrialState

        left = [(t.number, t.user_attrs.get("run"), dict(t.params))
                for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        size = len(points(self.grid))
        active: dict[int, Active] = {}
        # A run still training after a crashed runner keeps its slot (its GPU): nothing else is put there.
        slots = self.sweep.read_status().get("slots") or {}
        for item in list(left):
            slot, path = slots.get(str(item[1])), self.sweep.workspace.runs_dir / str(item[1])
            if (isinstance(slot, int) and 0 <= slot < self.parallel and slot not in active
                    and (path / "config.yaml").exists() and Run(path).is_active()):
                left.remove(item)
                active[slot] = Active(item[0], str(item[1]), Run(path), slot)
                self.log(f"trial {item[0] + 1}: run {item[1]} is still training; waiting for it")
        while not self.stopping:
            for slot in range(self.parallel):
                if slot in active or self.stopping:
                    continue
                if left:
                    number, name, params = left.pop(0)
                elif len(self.study.trials) < size:
                    number, name, params = self.ask()
                else:
                    break
                started = self.begin(number, name or run_name(self.sweep.name, number, params), params, slot)
                if started is not None:
                    active[slot] = started
            if not active and not left and len(self.study.trials) >= size:
                return "completed"
            names = [item.name for item in sorted(active.values(), key=lambda item: item.slot)]
            if self.sweep.read_status().get("current_runs") != names:
                self.sweep.update_status(current_run=names[0] if names else None, current_runs=names,
                                         slots={item.name: item.slot for item in active.values()})
            time.sleep(0.5)
            for slot, item in list(active.items()):
                if not item.run.is_active():
                    del active[slot]
                    if not self.settle(item):
                        self.stopping = True  # a run stopped from outside stops the sweep, as with one at a time
        return self.stop_all(active)

    def ask(self) -> tuple[int, str, dict[str, Any]]:
        trial = self.study.ask()
        params = {key: trial.suggest_categorical(key, values) for key, values in sorted(self.grid.items())}
        name = run_name(self.sweep.name, trial.number, params)
        trial.set_user_attr("run", name)  # before the run exists: a resume finds it by this name
        return trial.number, name, params

    def begin(self, number: int, name: str, params: dict[str, Any], slot: int) -> Active | None:
        """Start (or resume, or go on waiting for) the trial's run in ``slot``; None when it could not start."""
        from optuna.trial import TrialState

        path = self.sweep.workspace.runs_dir / name
        run = Run(path) if (path / "config.yaml").exists() else None
        env = slot_env(slot, self.gpus)
        where = f" on GPU {env['CUDA_VISIBLE_DEVICES']}" if env else ""
        try:
            if run is None:
                run, _ = control.start_run(self.sweep.workspace, apply(self.config, params), name=name, env=env)
                self.log(f"trial {number + 1}: started run {name}{where}")
            elif run.state in ("stopped", "failed") and run.latest_checkpoint() is not None:
                control.resume_run(run, env=env)
                self.log(f"trial {number + 1}: resumed run {name}{where}")
            elif run.state in ("created", "stopped", "failed"):  # no checkpoint: nothing to keep
                control.delete(run)
                run, _ = control.start_run(self.sweep.workspace, apply(self.config, params), name=name, env=env)
                self.log(f"trial {number + 1}: restarted run {name}{where}")
        except RunError as exc:
            self.log(f"trial {number + 1}: {exc}")
            self._tell(number, TrialState.FAIL, None)
            return None
        return Active(number, name, run, slot)

    def settle(self, item: Active) -> bool:
        """Tell Optuna how the trial's ended run went; False when it was stopped (the trial stays running)."""
        from optuna.trial import TrialState

        number, name, run = item.number, item.name, item.run
        state = run.state
        if state == "stopped" or (self.stopping and state != "completed"):
            self.log(f"trial {number + 1}: run {name} stopped")
            return False
        losses = [e.get("eval_loss") for e in eval_history(run.events())]
        loss = next((float(x) for x in reversed(losses) if isinstance(x, (int, float)) and math.isfinite(x)), None)
        if state == "completed" and loss is not None:
            self._tell(number, TrialState.COMPLETE, loss)
            self.log(f"trial {number + 1}: run {name} completed, held-out loss {loss:.4f}")
        else:
            error = run.read_status().get("error")
            why = ("no held-out loss (no eval split, or no eval step)" if state == "completed"
                   else f"run {state}" + (f": {error}" if error else ""))
            self._tell(number, TrialState.FAIL, None)
            self.log(f"trial {number + 1}: failed: {why}")
        return True

    def stop_all(self, active: dict[int, Active]) -> str:
        """Stop every training run (each checkpoints), wait for them, and end "stopped"."""
        if active:
            self.sweep.update_status(state="stopping")
        while active:
            for slot, item in list(active.items()):
                if not item.asked_to_stop:
                    item.asked_to_stop = control.stop(item.run)
                if not item.run.is_active():
                    del active[slot]
                    self.settle(item)  # one that completed meanwhile is told; a stopped one stays running
            time.sleep(0.5)
        return "stopped"

    def _tell(self, number: int, state: Any, value: float | None) -> None:
        try:
            self.study.tell(number, value, state=state)
        except RuntimeError as exc:
            # GridSampler asks the study to stop once the grid is done, which only optimize() takes;
            # the trial's result is stored before that.
            if "Study.stop" not in str(exc):
                raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sweep = Sweep(argv[0])
    sweep.update_status(state="running", pid=os.getpid(), pid_create_time=process_start_time(os.getpid()),
                        started_at=timestamp(), error=None)
    try:
        runner = Runner(sweep)
        signal.signal(signal.SIGTERM, runner.on_sigterm)
        state = runner.main()
    except Exception as exc:  # recorded for `sweep status`; the full trace goes to runner.log
        traceback.print_exc()
        # The slots stay: a run still training keeps its GPU when the sweep is resumed.
        sweep.update_status(state="failed", error=f"{type(exc).__name__}: {exc}", ended_at=timestamp(), current_run=None,
                            current_runs=[])
        return 1
    sweep.update_status(state=state, ended_at=timestamp(), current_run=None, current_runs=[])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
