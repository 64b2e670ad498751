"""The generation process: ``python -m stylelora_tui.generation.server RUN_DIR [RUN_DIR...]``.

It loads the base model once and each run's adapter under its own PEFT name,
then answers JSON-line requests on stdin, one at a time, with JSON lines on
stdout (nothing else is ever written there: library chatter goes to stderr).

Protocol (every line one JSON object):

- first line out: ``{"ready": true, "model", "model_path", "device", "dtype",
  "variants": ["base", RUN...], "eos_token_ids", "pad_token_id", "warnings"}``;
  a load failure is instead ``{"error": "...", "fatal": true}`` and exit 1.
- ``{"id", "op": "generate", "prompt": TEXT | "record": {...}, "variants":
  ["base", RUN, ...], "n": 5, "seed": 0, "temperature": 0.7, "top_p": 0.9,
  "max_new_tokens": 200}``. ``record`` is a corpus record (instruction +
  input); a typed ``prompt`` becomes the input of a record with the training
  data's instruction. The prompt is rendered by ``prompting.render_prompt``,
  the same chat template as training. For each sample i (seed = seed + i,
  the same seed for every variant) and each variant, in that order:
  ``{"id", "variant", "sample", "seed", "token": PIECE}`` as text arrives,
  then ``{"id", "variant", "sample", "seed", "done": true, "text", "tokens",
  "stopped": "eos"|"length"|"cancelled"}``. temperature 0 is greedy.
  A sample is reproduced with plain transformers by ``torch.manual_seed(seed)``
  then ``generate(do_sample=True, temperature=..., top_p=...)`` on the same
  rendered prompt (for "base": the base model without the adapter).
- ``{"id", "op": "eval_loss", "variants", "limit"?, "records"?}``: held-out
  loss on the run's eval.jsonl (or the given records), completion tokens only,
  as in training: ``{"id", "variant", "eval_loss", "perplexity", "tokens",
  "records"}`` per variant. The loss is the token-weighted mean NLL.
- ``{"op": "cancel", "id"}``: stops that request (now, or when it is reached).
- ``{"op": "shutdown"}``: cancel everything and exit 0. At the end of stdin
  the requests already sent are answered first, then it exits 0.
- every request ends with ``{"id", "finished": true, "cancelled": bool}``;
  a bad request gets ``{"id", "error": "..."}`` (then finished); the process
  never dies of one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stylelora_tui.prompting import read_jsonl, render_prompt, tokenize_records
from stylelora_tui.runs.run import Run

DEFAULT_INSTRUCTION = "Continue in the author's style:"
BASE = "base"


class GenerationError(RuntimeError):
    """A problem with a request or a run, with a message for the user."""


@dataclass
class RunAdapter:
    run: Run
    adapter_dir: Path
    adapter_name: str  # PEFT's module key: no dots allowed
    base_model: str  # as the config names it ("demo", a Hub id, a folder)
    base_path: str  # what to load
    cfg: dict[str, Any]
    note: str | None = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def resolve_run(run_dir: str | Path) -> RunAdapter:
    """The adapter folder and base model of a run (its final adapter, else its newest checkpoint)."""
    run = Run(Path(run_dir))
    if not run.config_path.exists():
        raise GenerationError(f"{run.path} is not a run directory (no config.yaml)")
    cfg = run.config()
    note = None
    adapter_dir = run.adapter_dir
    if not (adapter_dir / "adapter_config.json").exists():
        checkpoint = run.latest_checkpoint()
        if checkpoint is None or not (checkpoint / "adapter_config.json").exists():
            raise GenerationError(
                f"run {run.name} has no adapter yet (state: {run.state}): train it first, or wait for its first checkpoint"
            )
        adapter_dir, note = checkpoint, f"run {run.name} has not finished: using {checkpoint.name}"
    meta = _read_json(adapter_dir / "stylelora.json")
    base_model = meta.get("base_model") or cfg["model"]["name"]
    base_path = meta.get("base_model_path")
    if not base_path:
        start = next((e for e in reversed(run.events()) if e.get("type") == "start"), {})
        base_path = start.get("model_path")
    if not base_path or (base_path.startswith(("/", ".", "~")) and not Path(base_path).exists()):
        # The run was moved or the cache cleared: resolve the name again (demo, .gguf, Hub id).
        from stylelora_tui.training.models import ModelUnavailable, resolve_model_path

        try:
            base_path = resolve_model_path(base_model, lambda message: print(message, file=sys.stderr))
        except ModelUnavailable as exc:
            raise GenerationError(str(exc)) from None
    adapter_name = re.sub(r"[^A-Za-z0-9_-]", "_", run.name)
    return RunAdapter(run, adapter_dir, adapter_name, base_model, str(base_path), cfg, note)


@dataclass
class Engine:
    """One base model in memory, with every run's adapter loaded beside it."""

    adapters: list[RunAdapter]
    model: Any = None
    tokenizer: Any = None
    device: str = "cpu"
    dtype: str = ""
    eos_ids: list[int] = field(default_factory=list)
    pad_id: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def variants(self) -> list[str]:
        return [BASE] + [a.run.name for a in self.adapters]

    def load(self) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        first = self.adapters[0]
        bases = {a.base_path for a in self.adapters}
        if len(bases) > 1:
            raise GenerationError(f"these runs have different base models ({', '.join(sorted(bases))}); compare runs of one base")
        if any(a.run.name == BASE for a in self.adapters):
            raise GenerationError('a run named "base" cannot be compared with the base model; rename its folder')
        self.warnings += [a.note for a in self.adapters if a.note]
        kwargs: dict[str, Any] = {}
        if torch.cuda.is_available():
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            kwargs["device_map"] = {"": torch.cuda.current_device()}
            if first.cfg["model"].get("load_in_4bit"):
                from transformers import BitsAndBytesConfig

                kwargs["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
                )
            self.device = f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
        else:
            # No 4-bit without CUDA here: float32 is exact and fast enough for small models on a CPU.
            dtype = torch.float32
            self.device = f"cpu ({os.cpu_count()} threads)"
        self.dtype = ("nf4, " if "quantization_config" in kwargs else "") + str(dtype).replace("torch.", "")
        tokenizer_dir = first.adapter_dir if (first.adapter_dir / "tokenizer_config.json").exists() else first.base_path
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        base = AutoModelForCausalLM.from_pretrained(first.base_path, dtype=dtype, **kwargs)
        model = PeftModel.from_pretrained(base, str(first.adapter_dir), adapter_name=first.adapter_name)
        for adapter in self.adapters[1:]:
            model.load_adapter(str(adapter.adapter_dir), adapter_name=adapter.adapter_name)
        model.eval()
        self.model = model
        self._stop_tokens(base)

    def _stop_tokens(self, base: Any) -> None:
        """Every end-of-sequence id (tokenizer and generation config), and a pad id distinct from them."""
        eos: list[int] = []
        configured = getattr(base.generation_config, "eos_token_id", None)
        for value in [self.tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])]:
            if value is not None and int(value) not in eos:
                eos.append(int(value))
        if not eos:
            raise GenerationError("the tokenizer has no end-of-sequence token: generation would never stop")
        self.eos_ids = eos
        pad = self.tokenizer.pad_token_id
        if pad is None or pad in eos:
            # Harmless for one unpadded sequence, but a sign the model was set up with pad == eos,
            # which in training hides the end of every sample and gives a model that never stops.
            self.warnings.append("the tokenizer pads with its end-of-sequence token (or has no pad token)")
            pad = eos[0]
        self.pad_id = int(pad)

    @contextlib.contextmanager
    def variant(self, name: str):
        """The model as ``name``: the base (adapters disabled, same weights) or one run's adapter."""
        if name == BASE:
            with self.model.disable_adapter():
                yield
            return
        adapter = next((a for a in self.adapters if a.run.name == name), None)
        if adapter is None:
            raise GenerationError(f"unknown variant {name!r}; this process has {', '.join(self.variants)}")
        self.model.set_adapter(adapter.adapter_name)
        yield

    def record_for(self, request: dict[str, Any]) -> dict[str, Any]:
        if isinstance(request.get("record"), dict):
            return request["record"]
        prompt = request.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise GenerationError('a generate request needs "prompt" (text) or "record" (a corpus record)')
        return {"instruction": self.training_instruction(), "input": prompt}

    def training_instruction(self) -> str:
        """The instruction the run was trained with, so a typed prompt looks like the training prompts."""
        train = Path(self.adapters[0].cfg["data"]["corpus"]) / "train.jsonl"
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(train, encoding="utf-8") as handle:
                return str(json.loads(handle.readline()).get("instruction", DEFAULT_INSTRUCTION))
        return DEFAULT_INSTRUCTION

    def check_variants(self, request: dict[str, Any]) -> list[str]:
        variants = request.get("variants") or self.variants
        unknown = [v for v in variants if v not in self.variants]
        if unknown:
            raise GenerationError(f"unknown variant {unknown[0]!r}; this process has {', '.join(self.variants)}")
        return list(variants)

    def generate(self, request: dict[str, Any], emit: Callable[[dict], None], cancelled: Callable[[], bool]) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        variants = self.check_variants(request)
        try:
            n, seed = int(request.get("n", 5)), int(request.get("seed", 0))
            temperature, top_p = float(request.get("temperature", 0.7)), float(request.get("top_p", 0.9))
            max_new_tokens = int(request.get("max_new_tokens", 200))
        except (TypeError, ValueError) as exc:
            raise GenerationError(f"bad sampling setting: {exc}") from None
        if not 1 <= n <= 100 or max_new_tokens < 1 or temperature < 0 or not 0 < top_p <= 1:
            raise GenerationError("need 1 <= n <= 100, max_new_tokens >= 1, temperature >= 0 and 0 < top_p <= 1")
        prompt = render_prompt(self.tokenizer, self.record_for(request))
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        prompt_len = inputs["input_ids"].shape[1]

        class Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancelled(), dtype=torch.bool, device=input_ids.device)

        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        for i in range(n):
            for name in variants:
                if cancelled():
                    return
                tags = {"id": request.get("id"), "variant": name, "sample": i, "seed": seed + i}
                streamer = TokenStreamer(self.tokenizer, lambda piece, tags=tags: emit({**tags, "token": piece}))
                torch.manual_seed(seed + i)
                with self.variant(name), torch.no_grad():
                    output = self.model.generate(
                        **inputs, max_new_tokens=max_new_tokens, eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
                        streamer=streamer, stopping_criteria=StoppingCriteriaList([Cancel()]), **sampling,
                    )
                new = output[0, prompt_len:].tolist()
                stopped = "cancelled" if cancelled() else "eos" if new and new[-1] in self.eos_ids else "length"
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                emit({**tags, "done": True, "text": text, "tokens": len(new), "stopped": stopped})

    def eval_loss(self, request: dict[str, Any], emit: Callable[[dict], None], cancelled: Callable[[], bool]) -> None:
        import torch
        import torch.nn.functional as F

        variants = self.check_variants(request)
        records = request.get("records")
        if records is None:
            path = Path(self.adapters[0].cfg["data"]["corpus"]) / "eval.jsonl"
            if not path.exists():
                raise GenerationError(f"no held-out split at {path}: re-run `stylelora-tui prepare` with an eval share")
            records = read_jsonl(path)
        if request.get("limit"):
            records = records[: int(request["limit"])]
        rows = tokenize_records(self.tokenizer, records, int(self.adapters[0].cfg["model"]["max_seq_length"])).rows
        if not rows:
            raise GenerationError("no held-out record to score")
        for name in variants:
            total = tokens = 0.0
            with self.variant(name), torch.no_grad():
                for row in rows:  # one at a time: no padding, exact per-token sums
                    if cancelled():
                        return
                    ids = torch.tensor([row["input_ids"]], device=self.model.device)
                    mask = torch.tensor([row["completion_mask"]], device=self.model.device, dtype=torch.bool)
                    labels = torch.where(mask, ids, torch.full_like(ids, -100))[:, 1:]
                    logits = self.model(input_ids=ids).logits[:, :-1].float()
                    total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum").item()
                    tokens += int((labels != -100).sum())
            loss = total / tokens if tokens else None
            emit({"id": request.get("id"), "variant": name, "eval_loss": loss,
                  "perplexity": math.exp(loss) if loss is not None and loss < 50 else None,
                  "tokens": int(tokens), "records": len(rows)})


class TokenStreamer:
    """A transformers streamer that hands each new piece of decoded text to a callback.

    The whole generated sequence is decoded each time and only the new suffix
    is sent, so multi-token characters and merged spaces come out right; text
    ending in an incomplete character waits for the next token.
    """

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.ids: list[int] = []
        self.sent = 0
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call is the prompt
            self.prompt_seen = True
            return
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:
            return
        if len(text) > self.sent:
            piece, self.sent = text[self.sent :], len(text)
            self.on_text(piece)


class Server:
    """Reads requests in a thread (so cancel arrives mid-generation); serves them in order."""

    def __init__(self, engine: Engine, out: Any):
        self.engine, self.out = engine, out
        self.lock = threading.Lock()
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.cancelled: set[Any] = set()
        self.shutdown = threading.Event()

    def emit(self, message: dict[str, Any]) -> None:
        with self.lock:
            try:
                self.out.write(json.dumps(message, ensure_ascii=False) + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                self.shutdown.set()  # the client is gone: stop working for nobody

    def read_stdin(self, stream: Any) -> None:
        for line in stream:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                self.emit({"id": None, "error": f"a request must be one JSON object per line ({exc})"})
                continue
            op = message.get("op")
            if op == "cancel":
                self.cancelled.add(message.get("id"))
            elif op == "shutdown":
                self.shutdown.set()  # cancels the request in flight; the rest are dropped
                break
            else:
                self.requests.put(message)
        # End of input (a piped script): answer what was asked, then exit.
        self.requests.put(None)

    def serve(self) -> None:
        while True:
            request = self.requests.get()
            if request is None or self.shutdown.is_set():
                return
            self.handle(request)

    def handle(self, request: dict[str, Any]) -> None:
        rid = request.get("id")

        def cancelled() -> bool:
            return rid in self.cancelled or self.shutdown.is_set()

        handlers = {"generate": self.engine.generate, "eval_loss": self.engine.eval_loss}
        try:
            handler = handlers.get(request.get("op"))
            if handler is None:
                raise GenerationError(f"unknown op {request.get('op')!r}; use generate, eval_loss, cancel or shutdown")
            if not cancelled():
                handler(request, self.emit, cancelled)
        except GenerationError as exc:
            self.emit({"id": rid, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a bad request must never take the process down
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.emit({"id": rid, "error": f"{type(exc).__name__}: {first}"})
            import traceback

            traceback.print_exc(file=sys.stderr)
        self.emit({"id": rid, "finished": True, "cancelled": cancelled()})
        self.cancelled.discard(rid)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The protocol owns the real stdout; anything else printing (libraries, C code) lands on stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def fatal(message: str) -> int:
        out.write(json.dumps({"error": message, "fatal": True}) + "\n")
        out.flush()
        return 1

    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return fatal("usage: python -m stylelora_tui.generation.server RUN_DIR [RUN_DIR...]") if not argv else 0
    try:
        engine = Engine([resolve_run(path) for path in argv])
        engine.load()
    except GenerationError as exc:
        return fatal(str(exc))
    except Exception as exc:  # noqa: BLE001 - the client gets the reason, the traceback goes to stderr
        import traceback

        traceback.print_exc(file=sys.stderr)
        return fatal(f"could not load the model: {type(exc).__name__}: {str(exc).strip()[:500]}")
    first = engine.adapters[0]
    server = Server(engine, out)
    server.emit({
        "ready": True, "model": first.base_model, "model_path": first.base_path, "device": engine.device,
        "dtype": engine.dtype, "variants": engine.variants, "runs": {a.run.name: str(a.adapter_dir) for a in engine.adapters},
        "eos_token_ids": engine.eos_ids, "pad_token_id": engine.pad_id, "warnings": engine.warnings,
    })
    threading.Thread(target=server.read_stdin, args=(sys.stdin,), daemon=True).start()
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
