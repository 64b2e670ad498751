"""The sweep runner process: ``python -m stylelora_tui.sweeps.runner SWEEP_FOLDER``.

Optuna's GridSampler hands out the grid's points as trials (ask), each trained
as an ordinary run, one after another; the run's last held-out loss is told
back as the trial's value. The study lives in the sweep folder's journal file,
so a stopped or crashed runner resumes where it was: a trial still marked
running has its run resumed from its checkpoint, finished trials are never
run again. SIGTERM (``sweep stop``) stops the current run, which checkpoints,
and ends the runner as "stopped".
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from typing import Any

from stylelora_tui.runs import control
from stylelora_tui.runs.events import eval_history
from stylelora_tui.runs.run import Run, RunError, process_start_time, timestamp
from stylelora_tui.sweeps.grid import apply, points, run_name
from stylelora_tui.sweeps.sweep import Sweep, open_study


class Runner:
    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.config, self.grid = sweep.load()
        self.study = open_study(sweep, self.grid)
        self.stopping = False

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def on_sigterm(self, *_: Any) -> None:
        # Only a flag: the run's lock may be held by the code this interrupts; the wait loop stops the run.
        self.stopping = True

    def main(self) -> str:
        from optuna.trial import TrialState

        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # Left running by a stop or a crash: continue its run, never start the point again.
            if self.stopping:
                return "stopped"
            if not self.finish(frozen.number, frozen.user_attrs.get("run"), dict(frozen.params)):
                return "stopped"
        while len(self.study.trials) < len(points(self.grid)) and not self.stopping:
            trial = self.study.ask()
            params = {key: trial.suggest_categorical(key, values) for key, values in sorted(self.grid.items())}
            name = run_name(self.sweep.name, trial.number, params)
            trial.set_user_attr("run", name)
            if not self.finish(trial.number, name, params):
                return "stopped"
        return "stopped" if self.stopping else "completed"

    def finish(self, number: int, name: str | None, params: dict[str, Any]) -> bool:
        """Train (or resume) the trial's run to its end and tell Optuna; False when the sweep is stopping."""
        from optuna.trial import TrialState

        path = self.sweep.workspace.runs_dir / str(name)
        run = Run(path) if (path / "config.yaml").exists() else None
        try:
            if run is None:
                run, _ = control.start_run(self.sweep.workspace, apply(self.config, params), name=name)
                self.log(f"trial {number + 1}: started run {name}")
            elif run.state in ("stopped", "failed") and run.latest_checkpoint() is not None:
                control.resume_run(run)
                self.log(f"trial {number + 1}: resumed run {name}")
            elif run.state in ("created", "stopped", "failed"):  # no checkpoint: nothing to keep
                control.delete(run)
                run, _ = control.start_run(self.sweep.workspace, apply(self.config, params), name=name)
                self.log(f"trial {number + 1}: restarted run {name}")
        except RunError as exc:
            self.log(f"trial {number + 1}: {exc}")
            self._tell(number, TrialState.FAIL, None)
            return True
        self.sweep.update_status(current_run=name)
        asked_to_stop = False
        while run.is_active():
            if self.stopping and not asked_to_stop:
                self.sweep.update_status(state="stopping")
                asked_to_stop = control.stop(run)
            time.sleep(0.5)
        state = run.state
        if state == "stopped" or (self.stopping and state != "completed"):
            self.log(f"trial {number + 1}: run {name} stopped")
            self.stopping = True
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
        sweep.update_status(state="failed", error=f"{type(exc).__name__}: {exc}", ended_at=timestamp(), current_run=None)
        return 1
    sweep.update_status(state=state, ended_at=timestamp(), current_run=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
