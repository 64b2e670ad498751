"""The trainer process: ``python -m stylelora_tui.training.trainer RUN_DIR [--resume]``.

Started by ``runs.launch`` in its own session with its output in
``trainer.log``, it outlives whoever started it. It reads the run's resolved
config, trains, and reports only through the run directory: the event log
(one flushed JSON line per event, from a ``TrainerCallback``) and the status
file.

- SIGTERM (``stylelora-tui stop``): checkpoint at the current step, end "stopped".
- SIGHUP is ignored: a dropped SSH connection must not end training.
- An exception or out-of-memory ends "failed" with the error recorded; the
  full traceback goes to trainer.log. A full disk ends "failed: no space left
  on device (N MB free at PATH)": a small space reserve, freed on failure,
  leaves room to say so. How failures are worded: ``training.failures``.
- Exactly one ``end`` event per attempt, written here (``finish``).
- ``--resume`` continues from the newest complete checkpoint; steps, the
  learning-rate schedule and the token count carry on from there.
- ``train.gpus`` > 1: this process supervises N ranks started through
  accelerate, each of them this module in worker mode (``training.distributed``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from stylelora_tui import config as config_mod
from stylelora_tui.runs.events import EventWriter, clean_number
from stylelora_tui.runs.run import Run, process_start_time
from stylelora_tui.training import distributed
from stylelora_tui.training.callbacks import LiveSampler, make_callback, memory_figures
from stylelora_tui.training.failures import (
    OOM_HINT,
    TrainingFailure,
    classify,
    disk_full_message,
    is_disk_full,
    model_load_failure,
)
from stylelora_tui.training.models import ModelUnavailable, resolve_model_path

EXIT_COMPLETED, EXIT_FAILED, EXIT_STOPPED = 0, 1, 3
__all__ = ["OOM_HINT", "TrainingFailure", "classify", "main", "train"]


class StopRequested:
    """Set by SIGTERM/SIGINT; checked by the callback after every optimizer step."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"[stylelora] {self.signal_name} received: checkpointing, then stopping", flush=True)


class SpaceReserve:
    """A little disk space held from the start, given back when training fails.

    A full disk also stops the trainer from saying that the disk is full: the
    traceback, the end event and the status need a few kilobytes. Freeing
    this file first makes room for them.
    """

    SIZE = 256 * 1024

    def __init__(self, path: Path):
        self.path = path

    def claim(self) -> None:
        try:
            with open(self.path, "wb") as handle:
                handle.write(b"\0" * self.SIZE)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            self.release()  # already short of space: carry on without it

    def release(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


def train(run: Run, writer: EventWriter, stop: StopRequested, resume: bool) -> str:
    """Train the run; return its final state ("completed" or "stopped")."""
    cfg = config_mod.load(run.config_path, check_paths=False)
    corpus = Path(cfg["data"]["corpus"])
    _, problems = config_mod.validate(cfg, workspace=None, check_paths=True)
    if problems:
        raise TrainingFailure("; ".join(str(p) for p in problems), "config")

    from stylelora_tui.training import backends
    from stylelora_tui.prompting import pack_rows, read_jsonl, tokenize_records

    backend, backend_note = backends.choose_backend(cfg["model"]["backend"], distributed.world_size(), cfg["lora"]["method"])
    backends.import_backend(backend)  # Unsloth before transformers/trl/peft
    device, bf16, fp16 = backends.device_and_dtype(cfg["train"]["bf16"])

    checkpoint = None
    if resume:
        checkpoint = run.latest_checkpoint()
        if checkpoint is None:
            raise TrainingFailure(f"no complete checkpoint in {run.checkpoints_dir} to resume from", "resume")
        from_step = int(checkpoint.name.rsplit("-", 1)[-1])
        writer.write("resume", from_step=from_step, checkpoint=str(checkpoint), durable=True)

    try:
        model_path = resolve_model_path(cfg["model"]["name"], lambda message: print(f"[stylelora] {message}", flush=True))
    except ModelUnavailable as exc:
        raise TrainingFailure(str(exc), "model") from None
    if stop.requested:
        return "stopped"
    checkpointing, checkpointing_note = backends.checkpointing_decision(
        cfg["train"]["gradient_checkpointing"], memory_without_checkpointing(cfg, model_path), backends.available_memory()
    )
    try:
        loaded = backends.load(model_path, cfg, backend, bf16, checkpointing)
    except (OSError, ValueError) as exc:
        failure = model_load_failure(cfg["model"]["name"], exc)
        if failure:
            raise failure from exc
        raise
    if stop.requested:
        return "stopped"

    max_len = cfg["model"]["max_seq_length"]
    data_format, packing = cfg["data"]["format"], cfg["train"]["packing"]
    context = getattr(loaded.model.config, "max_position_embeddings", None)
    # Packed records are joined, then cut into max_seq_length blocks: none is cut short.
    train_split = tokenize_records(
        loaded.tokenizer, read_jsonl(corpus / "train.jsonl"), 1 << 30 if packing else max_len, data_format
    )
    eval_path = corpus / "eval.jsonl"
    eval_split = tokenize_records(loaded.tokenizer, read_jsonl(eval_path), max_len, data_format) if eval_path.exists() else None
    if not train_split.rows:
        raise TrainingFailure(
            f"no training record fits model.max_seq_length={max_len}: every prompt alone is that long or longer "
            f"(longest record {train_split.longest} tokens). Raise max_seq_length or re-run prepare with fewer "
            "--input-words.",
            "data",
        )
    if context and max_len > context:
        writer.write(
            "warning",
            message=f"model.max_seq_length={max_len} is longer than the model's context window ({context} tokens)",
        )
    if train_split.truncated or train_split.unusable:
        writer.write(
            "warning",
            message=(
                f"{train_split.truncated} training records were cut at max_seq_length={max_len} and "
                f"{train_split.unusable} skipped (longest {train_split.longest} tokens"
                + (f", model context {context}" if context else "")
                + ")"
            ),
        )

    train_rows = pack_rows(train_split.rows, max_len) if packing else train_split.rows
    args = backends.training_arguments(
        cfg, str(run.checkpoints_dir), bf16=bf16, fp16=fp16, has_eval=bool(eval_split and eval_split.rows), backend=backend,
        checkpointing=checkpointing,
    )
    ratio = loaded.trainable / loaded.total if loaded.total else None
    start_fields = dict(
        model=cfg["model"]["name"],
        model_path=model_path,
        backend=backend,
        backend_note=backend_note,
        device=device,
        dtype=loaded.dtype,
        trainable_params=loaded.trainable,
        total_params=loaded.total,
        trainable_ratio=ratio,
        train_records=len(train_split.rows),
        train_sequences=len(train_rows),
        train_tokens=sum(len(row["input_ids"]) for row in train_rows),
        data_format=data_format,
        packing=bool(packing),
        gradient_checkpointing=checkpointing,
        gradient_checkpointing_note=checkpointing_note,
        eval_records=len(eval_split.rows) if eval_split else 0,
        max_seq_length=max_len,
        effective_batch=cfg["train"]["per_device_train_batch_size"] * cfg["train"]["gradient_accumulation_steps"],
        resumed_from=str(checkpoint) if checkpoint else None,
        pid=os.getpid(),
        world_size=distributed.world_size(),
        max_minutes=float(cfg["train"].get("max_minutes") or 0),
    )
    run.update_status(backend=backend, device=device)
    held_out = read_jsonl(eval_path) if eval_path.exists() else []
    sample_record = (held_out or read_jsonl(corpus / "train.jsonl"))[0]
    sampler = LiveSampler(loaded, sample_record, cfg["train"]["sample_max_new_tokens"], seed=cfg["train"]["seed"],
                          author_texts=[r["output"] for r in held_out if r is not sample_record], data_format=data_format)
    callback = make_callback(run, writer, stop, start_fields, sampler, cfg)
    trainer = backends.build_trainer(loaded, args, train_rows, eval_split.rows if eval_split else [], [callback])
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = output.metrics or {}
    writer.write(
        "summary",
        step=trainer.state.global_step,
        train_runtime=clean_number(metrics.get("train_runtime")),
        train_loss=clean_number(metrics.get("train_loss")),
        tokens_seen=int(trainer.state.num_input_tokens_seen or 0),
    )
    if stop.requested:
        return "stopped"
    if distributed.rank() != 0:
        return "completed"  # rank 0 saves the adapter
    save_adapter(run, loaded, cfg, model_path)
    writer.write("adapter", path=str(run.adapter_dir), durable=True)
    return "completed"


def memory_without_checkpointing(cfg: dict[str, Any], model_path: str) -> int | None:
    """The memory estimate of this run with gradient checkpointing off (None: model shape unknown)."""
    from stylelora_tui.training.estimate import estimate_for_config

    probe = {section: dict(values) for section, values in cfg.items()}
    probe["train"]["gradient_checkpointing"] = False
    probe["model"]["name"] = model_path  # the resolved folder: its config.json gives the shape
    try:
        estimate = estimate_for_config(probe)
    except (OSError, ValueError):
        return None
    return estimate.memory.total if estimate else None


def save_adapter(run: Run, loaded: Any, cfg: dict[str, Any], model_path: str) -> None:
    """Write the adapter to a temporary folder, then rename: never half an adapter."""
    import json
    import shutil

    tmp = run.path / "adapter.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        loaded.model.save_pretrained(str(tmp), safe_serialization=True)
        loaded.tokenizer.save_pretrained(str(tmp))
        (tmp / "stylelora.json").write_text(
            json.dumps({"base_model": cfg["model"]["name"], "base_model_path": model_path, "backend": loaded.backend, "config": cfg}, indent=2),
            encoding="utf-8",
        )
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc, run.path):
            raise TrainingFailure(
                f"{disk_full_message(run.path)}: could not save the adapter to {run.adapter_dir}. Free some space, "
                f"then `stylelora-tui train --resume {run.name}` (the last checkpoint is kept)",
                "disk",
            ) from None
        raise
    if run.adapter_dir.exists():
        shutil.rmtree(run.adapter_dir)
    tmp.rename(run.adapter_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylelora_tui.training.trainer")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    run = Run(args.run_dir)
    stop = StopRequested()
    stop.install()
    if distributed.is_worker():
        return rank_main(run, stop, args.resume)
    reserve = SpaceReserve(run.path / ".space-reserve")
    reserve.claim()
    writer: EventWriter | None = None
    state, error, kind, detail, code = "failed", None, None, None, EXIT_FAILED
    processes = 1
    try:
        run.update_status(
            state="running",
            pid=os.getpid(),
            pid_create_time=process_start_time(os.getpid()),
            host=socket.gethostname(),
            started_at=round(time.time(), 3),
            stop_signal=None,
        )
        writer = EventWriter(run.events_path)
        train_cfg = config_mod.load(run.config_path, check_paths=False)["train"]
        processes = distributed.process_count(train_cfg)
        if processes > 1:
            state, error, kind, detail = distributed.supervise(
                run, processes, resume=args.resume, stop=stop, config_file=train_cfg.get("accelerate_config") or None)
        else:
            state = train(run, writer, stop, args.resume)
        code = {"completed": EXIT_COMPLETED, "stopped": EXIT_STOPPED}.get(state, EXIT_FAILED)
    except config_mod.ConfigError as exc:
        error, kind = str(exc), "config"
    except TrainingFailure as exc:
        error, kind = str(exc), exc.kind
    except BaseException as exc:  # noqa: BLE001 - every failure must end in the log, status and events
        kind, error, detail = classify(exc, run.path)  # before the reserve goes: the free space as it was
        reserve.release()  # room for the traceback, the end event and the status
        try:
            traceback.print_exc()
        except OSError:
            pass
    reserve.release()
    if error:
        _say(f"[stylelora] failed: {error}")
    # A supervisor's own memory says nothing of the ranks' (their log events carry theirs).
    finish(run, writer, state=state, error=error, kind=kind, detail=detail, code=code, stop=stop, memory=processes == 1)
    return code


def rank_main(run: Run, stop: StopRequested, resume: bool) -> int:
    """One rank of a launch of several: train, then report how it ended (rank 0 alone writes the run folder)."""
    writer: Any = EventWriter(run.events_path) if distributed.rank() == 0 else distributed.SilentWriter()
    view = run if distributed.rank() == 0 else distributed.RankRun(run.path)
    state, error, kind, detail = "failed", None, None, None
    try:
        distributed.allow_cpu_rank_locations()
        state = train(view, writer, stop, resume)
    except config_mod.ConfigError as exc:
        error, kind = str(exc), "config"
    except TrainingFailure as exc:
        error, kind = str(exc), exc.kind
    except BaseException as exc:  # noqa: BLE001 - the supervisor must hear how every rank ended
        kind, error, detail = classify(exc, run.path)
        traceback.print_exc()
    writer.close()
    distributed.write_report(run, state, error, kind, detail)
    return EXIT_FAILED if state == "failed" else EXIT_COMPLETED  # a stop is not a failure for the launcher


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass  # trainer.log is on a full disk; the status still says it


def finish(
    run: Run, writer: EventWriter | None, *, state: str, error: str | None, kind: str | None, detail: str | None,
    code: int, stop: StopRequested, memory: bool = True,
) -> None:
    """The one end event, then the final status; a failing write is reported, never fatal."""
    end_fields: dict[str, Any] = {"state": state, "error": error, "error_kind": kind, "error_detail": detail}
    try:
        end_fields.update(memory_figures() if memory else {})
    except Exception:  # noqa: BLE001 - memory figures are a nicety at this point
        pass
    try:
        writer = writer or EventWriter(run.events_path)
        writer.write("end", durable=True, **end_fields)
        writer.close()
    except OSError as exc:
        _say(f"[stylelora] could not write the end event to {run.events_path}: {exc}")
    try:
        run.update_status(
            state=state,
            error=error,
            error_kind=kind,
            error_detail=detail,
            exit_code=code,
            ended_at=round(time.time(), 3),
            stop_signal=stop.signal_name or None,
        )
    except OSError as exc:
        _say(f"[stylelora] could not write the final status to {run.status_path}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
