"""The trainer process: ``python -m stylelora_tui.training.trainer RUN_DIR [--resume]``.

Started by ``runs.launch`` in its own session with its output in
``trainer.log``, it outlives whoever started it. It reads the run's resolved
config, trains, and reports only through the run directory: the event log
(one flushed JSON line per event, from a ``TrainerCallback``) and the status
file.

- SIGTERM (``stylelora-tui stop``): checkpoint at the current step, end "stopped".
- SIGHUP is ignored: a dropped SSH connection must not end training.
- An exception or out-of-memory ends "failed" with the error recorded; the
  full traceback goes to trainer.log.
- ``--resume`` continues from the newest complete checkpoint; steps, the
  learning-rate schedule and the token count carry on from there.
"""

from __future__ import annotations

import argparse
import errno
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
from stylelora_tui.training.models import ModelUnavailable, resolve_model_path

EXIT_COMPLETED, EXIT_FAILED, EXIT_STOPPED = 0, 1, 3
OOM_HINT = (
    "out of memory: lower train.per_device_train_batch_size (raise gradient_accumulation_steps to keep the "
    "effective batch), lower model.max_seq_length, set model.load_in_4bit: true, or keep "
    "train.gradient_checkpointing: true"
)


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


class TrainingFailure(RuntimeError):
    """A failure with a message meant for the user (no traceback needed)."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


def memory_figures() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        return {
            "memory_kind": "gpu",
            "memory_bytes": int(torch.cuda.memory_reserved()),
            "peak_memory_bytes": int(torch.cuda.max_memory_reserved()),
        }
    import resource

    import psutil

    return {
        "memory_kind": "rss",
        "memory_bytes": int(psutil.Process().memory_info().rss),
        "peak_memory_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
    }


class LiveSampler:
    """Greedy continuation of one fixed held-out prompt, so the user watches the style arrive."""

    def __init__(self, loaded: Any, record: dict[str, Any] | None, max_new_tokens: int):
        self.loaded, self.record, self.max_new_tokens = loaded, record, max_new_tokens

    def sample(self) -> dict[str, Any] | None:
        if self.record is None:
            return None
        import torch

        from stylelora_tui.prompting import render_prompt

        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        started = time.perf_counter()
        inputs = tokenizer(render_prompt(tokenizer, self.record), add_special_tokens=False, return_tensors="pt")
        inputs = {key: value.to(model.device) for key, value in inputs.items()}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                output = model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id,
                    use_cache=True,
                )
        finally:
            if was_training:
                model.train()
        text = tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return {
            "prompt": self.record.get("input", ""),
            "text": text.strip(),
            "reference": self.record.get("output", ""),
            "record_id": self.record.get("id"),
            "seconds": round(time.perf_counter() - started, 3),
        }


def injected_fault(step: int) -> None:
    """``STYLELORA_FAULT=oom_at_step:N``: a real out-of-memory error at step N.

    There is no way to exhaust memory on purpose in a test; this lets tests
    and users check how an OOM is reported, through the real failure path.
    """
    fault = os.environ.get("STYLELORA_FAULT", "")
    if fault.startswith("oom_at_step:") and step == int(fault.split(":", 1)[1]):
        import torch

        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB (injected by STYLELORA_FAULT)"
        )


def make_callback(
    run: Run, writer: EventWriter, stop: StopRequested, start_fields: dict[str, Any], sampler: LiveSampler, cfg: dict[str, Any]
) -> Any:
    from transformers import TrainerCallback

    sample_every = cfg["train"]["sample_steps"] or cfg["train"]["save_steps"]

    class EventsCallback(TrainerCallback):
        """Turns the Trainer's hooks into events; times only the optimizer steps.

        tokens/s counts non-padding tokens over the time spent inside training
        steps, so evaluation, checkpointing and sampling never dilute it.
        """

        def __init__(self) -> None:
            self.step_started = 0.0
            self.train_seconds = 0.0
            self.tokens_at_last_log: int | None = None
            self.seconds_at_last_log = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.tokens_at_last_log = int(state.num_input_tokens_seen or 0)
            writer.write("start", step=state.global_step, total_steps=state.max_steps, **start_fields, **memory_figures())
            run.update_status(state="running", step=state.global_step, total_steps=state.max_steps)

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_started = time.perf_counter()
            injected_fault(state.global_step + 1)

        def on_step_end(self, args, state, control, **kwargs):
            # Time first: sampling below must not count as training time.
            self.train_seconds += time.perf_counter() - self.step_started
            if stop.requested:
                control.should_save = True
                control.should_training_stop = True
                return
            due = state.global_step % sample_every == 0 or state.global_step == state.max_steps
            if cfg["train"]["sample_steps"] >= 0 and due:
                sample = sampler.sample()
                if sample:
                    writer.write("sample", step=state.global_step, **sample)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "eval_loss" in logs:
                writer.write(
                    "eval", step=state.global_step, epoch=clean_number(state.epoch), eval_loss=clean_number(logs["eval_loss"])
                )
                return
            if "loss" not in logs:
                return  # the end-of-training summary
            tokens = int(state.num_input_tokens_seen or 0)
            seconds = self.train_seconds - self.seconds_at_last_log
            new_tokens = tokens - (self.tokens_at_last_log or 0)
            tokens_per_s = new_tokens / seconds if seconds > 0 else None
            self.tokens_at_last_log, self.seconds_at_last_log = tokens, self.train_seconds
            loss = clean_number(logs.get("loss"))
            writer.write(
                "log",
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=clean_number(state.epoch),
                loss=loss,
                learning_rate=clean_number(logs.get("learning_rate")),
                grad_norm=clean_number(logs.get("grad_norm")),
                tokens_seen=tokens,
                tokens_per_s=clean_number(tokens_per_s),
                step_seconds=clean_number(seconds / max(1, args.logging_steps)),
                **memory_figures(),
            )
            run.update_status(step=state.global_step, total_steps=state.max_steps, last_loss=loss)

        def on_save(self, args, state, control, **kwargs):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            writer.write("checkpoint", step=state.global_step, path=str(path), durable=True)

    return EventsCallback()


def _model_load_failure(name: str, exc: BaseException) -> TrainingFailure | None:
    text = f"{type(exc).__name__}: {exc}"
    markers = ("is not a local folder", "RepositoryNotFound", "not a valid model identifier", "LocalEntryNotFound",
               "offline mode", "Connection", "couldn't connect", "404 Client Error", "does not appear to have a file")
    if any(marker.lower() in text.lower() for marker in markers):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TrainingFailure(
            f"model {name!r} could not be loaded: not a local folder, and not found on (or not reachable at) the "
            f"Hugging Face Hub. Check model.name, your network, and HF_TOKEN for gated models. ({first})",
            "model",
        )
    return None


def train(run: Run, writer: EventWriter, stop: StopRequested, resume: bool) -> str:
    """Train the run; return its final state ("completed" or "stopped")."""
    cfg = config_mod.load(run.config_path, check_paths=False)
    corpus = Path(cfg["data"]["corpus"])
    _, problems = config_mod.validate(cfg, workspace=None, check_paths=True)
    if problems:
        raise TrainingFailure("; ".join(str(p) for p in problems), "config")

    from stylelora_tui.training import backends
    from stylelora_tui.prompting import read_jsonl, tokenize_records

    backend, backend_note = backends.choose_backend(cfg["model"]["backend"])
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
    try:
        loaded = backends.load(model_path, cfg, backend, bf16)
    except (OSError, ValueError) as exc:
        failure = _model_load_failure(cfg["model"]["name"], exc)
        if failure:
            raise failure from exc
        raise
    if stop.requested:
        return "stopped"

    max_len = cfg["model"]["max_seq_length"]
    context = getattr(loaded.model.config, "max_position_embeddings", None)
    train_split = tokenize_records(loaded.tokenizer, read_jsonl(corpus / "train.jsonl"), max_len)
    eval_path = corpus / "eval.jsonl"
    eval_split = tokenize_records(loaded.tokenizer, read_jsonl(eval_path), max_len) if eval_path.exists() else None
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

    args = backends.training_arguments(
        cfg, str(run.checkpoints_dir), bf16=bf16, fp16=fp16, has_eval=bool(eval_split and eval_split.rows), backend=backend
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
        eval_records=len(eval_split.rows) if eval_split else 0,
        max_seq_length=max_len,
        effective_batch=cfg["train"]["per_device_train_batch_size"] * cfg["train"]["gradient_accumulation_steps"],
        resumed_from=str(checkpoint) if checkpoint else None,
        pid=os.getpid(),
    )
    run.update_status(backend=backend, device=device)
    held_out = read_jsonl(eval_path) if eval_path.exists() else []
    sampler = LiveSampler(loaded, (held_out or read_jsonl(corpus / "train.jsonl"))[0], cfg["train"]["sample_max_new_tokens"])
    callback = make_callback(run, writer, stop, start_fields, sampler, cfg)
    trainer = backends.build_trainer(
        loaded, args, train_split.rows, eval_split.rows if eval_split else [], [callback]
    )
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
    save_adapter(run, loaded, cfg, model_path)
    writer.write("adapter", path=str(run.adapter_dir), durable=True)
    return "completed"


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
        if is_disk_full(exc):
            raise TrainingFailure(
                f"the disk is full: could not save the adapter to {run.adapter_dir}. Free some space, then "
                f"`stylelora-tui train --resume {run.path}` (the last checkpoint is kept)",
                "disk",
            ) from None
        raise
    if run.adapter_dir.exists():
        shutil.rmtree(run.adapter_dir)
    tmp.rename(run.adapter_dir)


def is_disk_full(exc: BaseException) -> bool:
    # safetensors' writer reports ENOSPC as its own error type, with the OS message.
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)


def classify(exc: BaseException) -> tuple[str, str, str]:
    """(kind, message for the user, the exception's own first line) for an unexpected exception."""
    text = str(exc)
    name = type(exc).__name__
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    detail = f"{name}: {first_line}" if first_line else name
    if isinstance(exc, MemoryError) or "OutOfMemoryError" in name or "out of memory" in text.lower():
        return "oom", f"{OOM_HINT} ({detail})", detail
    if is_disk_full(exc):
        return "disk", f"the disk is full ({exc.filename or 'while writing'}); free some space and resume the run", detail
    return "error", detail, detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylelora_tui.training.trainer")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    run = Run(args.run_dir)
    stop = StopRequested()
    stop.install()
    run.update_status(
        state="running",
        pid=os.getpid(),
        pid_create_time=process_start_time(os.getpid()),
        host=socket.gethostname(),
        started_at=round(time.time(), 3),
        stop_signal=None,
    )
    writer = EventWriter(run.events_path)
    state, error, kind, detail, code = "failed", None, None, None, EXIT_FAILED
    try:
        state = train(run, writer, stop, args.resume)
        code = EXIT_COMPLETED if state == "completed" else EXIT_STOPPED
    except config_mod.ConfigError as exc:
        error, kind = str(exc), "config"
    except TrainingFailure as exc:
        error, kind = str(exc), exc.kind
    except BaseException as exc:  # noqa: BLE001 - every failure must end in the log, status and events
        traceback.print_exc()
        kind, error, detail = classify(exc)
    if error:
        print(f"[stylelora] failed: {error}", file=sys.stderr, flush=True)
    end_fields: dict[str, Any] = {"state": state, "error": error, "error_kind": kind, "error_detail": detail}
    try:
        end_fields.update(memory_figures())
    except Exception:  # noqa: BLE001 - memory figures are a nicety at this point
        pass
    writer.write("end", durable=True, **end_fields)
    writer.close()
    run.update_status(
        state=state,
        error=error,
        error_kind=kind,
        error_detail=detail,
        exit_code=code,
        ended_at=round(time.time(), 3),
        stop_signal=stop.signal_name or None,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
