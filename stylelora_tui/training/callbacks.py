"""The trainer's eyes: the Trainer callback that writes events, the live sampler, memory figures.

Runs inside the trainer subprocess only (imports torch and transformers
lazily, inside the functions).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from stylelora_tui.generation.protocol import SAMPLING_DEFAULTS
from stylelora_tui.runs.events import EventWriter, clean_number
from stylelora_tui.runs.run import Run
from stylelora_tui.training.distributed import any_rank, rank


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


def gpu_figures() -> list[dict[str, Any]]:
    """Utilisation and memory of every GPU on this machine (NVML, as nvidia-smi reads them); [] without one."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no NVIDIA driver, no library: no GPU figures
        return []
    figures = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            figures.append({"index": index, "utilization": int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                            "memory_used": int(memory.used), "memory_total": int(memory.total)})
    except Exception:  # noqa: BLE001 - a figure NVML cannot give is left out, never fatal
        pass
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return figures


class LiveSampler:
    """A sampled continuation of one fixed held-out prompt, so the user watches the style arrive.

    Sampled as compare samples are (its temperature and top-p), not greedy:
    greedy decoding of a small model loops, which shows degeneration, not style.
    Every sample point uses the same seed, so samples are comparable across
    steps. The draw is compare's own (``generation.sampling.SeededSampler``,
    with a generator of its own), so the sample is the one compare makes from
    that seed, and the trainer's random state is never touched: sampling does
    not change what training does next.
    """

    def __init__(self, loaded: Any, record: dict[str, Any] | None, max_new_tokens: int, *, seed: int,
                 temperature: float = SAMPLING_DEFAULTS["temperature"], top_p: float = SAMPLING_DEFAULTS["top_p"],
                 author_texts: list[str] | None = None, data_format: str = "instruction",
                 repetition_penalty: float = SAMPLING_DEFAULTS["repetition_penalty"]):
        self.loaded, self.record, self.max_new_tokens = loaded, record, max_new_tokens
        self.data_format, self.repetition_penalty = data_format, repetition_penalty
        self.seed, self.temperature, self.top_p = seed, temperature, top_p
        self.author_texts = author_texts or []  # the held-out passages the sample is scored against

    def sample(self) -> dict[str, Any] | None:
        if self.record is None:
            return None
        import torch
        from transformers import LogitsProcessorList

        from stylelora_tui.generation.sampling import SeededSampler
        from stylelora_tui.prompting import render_prompt

        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        started = time.perf_counter()
        inputs = tokenizer(render_prompt(tokenizer, self.record, self.data_format), add_special_tokens=False, return_tensors="pt")
        inputs = {key: value.to(model.device) for key, value in inputs.items()}
        processors = [SeededSampler([self.seed], self.temperature, self.top_p, model.device)] if self.temperature > 0 else []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                output = model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    repetition_penalty=self.repetition_penalty,
                    do_sample=False,  # greedy over the seeded sampler's noise: a seeded draw
                    logits_processor=LogitsProcessorList(processors),
                    eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id,
                    use_cache=True,
                )
        finally:
            if was_training:
                model.train()
        text = tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        reference = self.record.get("output", "")
        return {
            "prompt": self.record.get("input", ""),
            "text": text,
            "reference": reference,
            "record_id": self.record.get("id"),
            "seed": self.seed,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            **self.style_distances(text, reference),
            "seconds": round(time.perf_counter() - started, 3),
        }

    def style_distances(self, text: str, reference: str) -> dict[str, float | None]:
        """Burrows's Delta (compare's style distance) of the sample and of the author's own continuation.

        Both are scored on one scale against the other held-out passages, so
        ``reference_style_distance`` is what the author scores on the same
        prompt: the floor the sample's distance falls toward as the style arrives.
        """
        if not self.author_texts:
            return {"style_distance": None, "reference_style_distance": None}
        from stylelora_tui.compare.stylometry import burrows_delta

        deltas, _ = burrows_delta(self.author_texts, {"sample": [text], "reference": [reference]})
        return {"style_distance": clean_number(deltas["sample"]),
                "reference_style_distance": clean_number(deltas["reference"])}


def injected_fault(step: int) -> None:
    """``STYLELORA_FAULT=oom_at_step:N`` (``oom_at_step:N@rank:R``: in rank R only): a real out-of-memory
    error at step N.

    There is no way to exhaust memory on purpose in a test; this lets tests
    and users check how an OOM is reported, through the real failure path.
    """
    fault, _, only_rank = os.environ.get("STYLELORA_FAULT", "").partition("@rank:")
    if only_rank and int(only_rank) != rank():
        return
    if fault.startswith("oom_at_step:") and step == int(fault.split(":", 1)[1]):
        import torch

        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB (injected by STYLELORA_FAULT)"
        )


def heap_trimmer() -> Any:
    """glibc's ``malloc_trim(0)``, or a no-op where there is none (macOS, musl).

    A CPU trainer allocates activations of a new size for every batch; glibc
    keeps freed heap pages mapped, so the resident size climbs step after step
    although nothing is held (measured: docs/benchmarks.md). Trimming after
    each step hands those pages back; it takes about a millisecond.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


def make_callback(
    run: Run, writer: EventWriter, stop: Any, start_fields: dict[str, Any], sampler: LiveSampler, cfg: dict[str, Any]
) -> Any:
    """The Trainer callback; ``stop`` is anything with a ``requested`` flag (the trainer's StopRequested)."""
    from transformers import TrainerCallback

    sample_every = cfg["train"]["sample_steps"] or cfg["train"]["save_steps"]
    budget_seconds = float(cfg["train"].get("max_minutes") or 0) * 60
    # A GPU run's activations live in CUDA's caching allocator, not the heap.
    trim_heap = heap_trimmer() if os.environ.get("STYLELORA_MALLOC_TRIM", "1") != "0" else (lambda: None)

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
            self.budget_reached = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.tokens_at_last_log = int(state.num_input_tokens_seen or 0)
            writer.write("start", step=state.global_step, total_steps=state.max_steps, **start_fields, **memory_figures())
            run.update_status(state="running", step=state.global_step, total_steps=state.max_steps)

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_started = time.perf_counter()
            injected_fault(state.global_step + 1)

        def on_step_end(self, args, state, control, **kwargs):
            trim_heap()  # part of the step's cost
            # Time first: sampling below must not count as training time.
            self.train_seconds += time.perf_counter() - self.step_started
            # Several ranks stop at the same step, or DDP would wait forever for the one that went on.
            over_budget = bool(budget_seconds) and self.train_seconds >= budget_seconds and not self.budget_reached
            stop.requested, over_budget = any_rank([stop.requested, over_budget], args.device)
            if stop.requested:
                control.should_save = True
                control.should_training_stop = True
                return
            if over_budget:
                # The run ends as completed: the adapter is saved as at the last step.
                self.budget_reached = control.should_training_stop = True
                writer.write("budget", step=state.global_step, max_minutes=budget_seconds / 60)
            due = state.global_step % sample_every == 0 or state.global_step == state.max_steps or self.budget_reached
            if cfg["train"]["sample_steps"] >= 0 and due and rank() == 0:
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
                **({"gpus": gpus} if (gpus := gpu_figures()) else {}),
            )
            run.update_status(step=state.global_step, total_steps=state.max_steps, last_loss=loss)

        def on_save(self, args, state, control, **kwargs):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            writer.write("checkpoint", step=state.global_step, path=str(path), durable=True)

    return EventsCallback()
