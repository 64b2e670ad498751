"""The model side of the generation process: one base in memory, every run's adapter beside it.

Heavy imports (torch, transformers, PEFT) happen inside the methods: this
module is imported by the process only after it has its arguments.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stylelora_tui.generation.protocol import BASE, GenerationError, sampling_from
from stylelora_tui.generation.run_adapters import RunAdapter
from stylelora_tui.generation.sampling import BatchStreamer, SeededSampler, until_end
from stylelora_tui.prompting import DATA_FORMATS, DEFAULT_INSTRUCTION, read_jsonl, record_format, render_prompt, tokenize_records
from stylelora_tui.training.backends import cpu_bf16_supported, device_description, four_bit_config


def peft_type(adapter_dir: Path) -> str:
    """The adapter's PEFT type (LORA, IA3, PROMPT_TUNING...), from its adapter_config.json."""
    try:
        return str(json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type") or "LORA")
    except (OSError, ValueError):
        return "LORA"  # PeftModel names the real problem when it loads the folder


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
    models: dict[str, Any] = field(default_factory=dict)  # adapter name -> the PeftModel holding it

    @property
    def data_format(self) -> str:
        """How prompts are written for every variant: the runs' ``data.format`` (base gets the same prompt)."""
        return record_format(self.adapters[0].cfg)

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
        formats = {a.run.name: record_format(a.cfg) for a in self.adapters}
        if len(set(formats.values())) > 1:
            listed = ", ".join(f"{name} ({fmt})" for name, fmt in formats.items())
            raise GenerationError(f"these runs were trained on different data formats: {listed}; compare runs of one format")
        self.warnings += [a.note for a in self.adapters if a.note]
        kwargs: dict[str, Any] = {}
        self.device = device_description()
        if torch.cuda.is_available():
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            kwargs["device_map"] = {"": torch.cuda.current_device()}
            if first.cfg["model"].get("load_in_4bit"):
                kwargs["quantization_config"] = four_bit_config(dtype)
        else:
            # No 4-bit without CUDA. bfloat16 where the CPU has it natively (batched sampling ran
            # 5.1x the old sequential path in bf16 against 3.3x in float32: docs/benchmarks.md), as
            # training's train.bf16 "auto" does; STYLELORA_GENERATION_DTYPE=float32 asks for exact sums.
            wanted = os.environ.get("STYLELORA_GENERATION_DTYPE", "auto")
            dtype = torch.bfloat16 if wanted == "bfloat16" or (wanted == "auto" and cpu_bf16_supported()) else torch.float32
        self.dtype = ("nf4, " if "quantization_config" in kwargs else "") + str(dtype).replace("torch.", "")
        tokenizer_dir = first.adapter_dir if (first.adapter_dir / "tokenizer_config.json").exists() else first.base_path
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        # PEFT holds adapters of one type on a model (LoRA and prompt tuning cannot share one): one base copy
        # per adapter type, every adapter of that type switched on it. Runs of one method share a single copy.
        groups: dict[str, list[RunAdapter]] = {}
        for adapter in self.adapters:
            groups.setdefault(peft_type(adapter.adapter_dir), []).append(adapter)
        if len(groups) > 1:
            self.warnings.append(f"runs of {len(groups)} adapter types ({', '.join(groups)}): one copy of the base model for each")
        for members in groups.values():
            base = AutoModelForCausalLM.from_pretrained(first.base_path, dtype=dtype, **kwargs)
            model = PeftModel.from_pretrained(base, str(members[0].adapter_dir), adapter_name=members[0].adapter_name)
            for adapter in members[1:]:
                model.load_adapter(str(adapter.adapter_dir), adapter_name=adapter.adapter_name)
            model.eval()
            self.models.update({adapter.adapter_name: model for adapter in members})
            if self.model is None:  # the first copy: the base side, the device, the stop tokens
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
        model = self.models[adapter.adapter_name]
        model.set_adapter(adapter.adapter_name)
        shown, self.model = self.model, model
        try:
            yield
        finally:
            self.model = shown

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
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        variants = self.check_variants(request)
        settings = sampling_from(request)
        n, seed, temperature = settings["n"], settings["seed"], settings["temperature"]
        top_p, max_new_tokens = settings["top_p"], settings["max_new_tokens"]
        prompt = render_prompt(self.tokenizer, self.record_for(request), self.data_format)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        prompt_len = inputs["input_ids"].shape[1]

        class Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancelled(), dtype=torch.bool, device=input_ids.device)

        # One batched call per variant: every sample of the prompt at once, each with its own seed
        # (SeededSampler), streamed row by row. Temperature 0 is greedy: one row, copied n times.
        rows = n if temperature > 0 else 1
        seeds = [seed + i for i in range(n)]
        batch = {key: value.repeat(rows, 1) for key, value in inputs.items()}
        for name in variants:
            if cancelled():
                return
            tags = [{"id": request.get("id"), "variant": name, "sample": i, "seed": seeds[i]} for i in range(n)]
            streamer = BatchStreamer(self.tokenizer, [lambda piece, tags=tags[i]: emit({**tags, "token": piece})
                                                      for i in range(rows)], self.eos_ids)
            processors = [SeededSampler(seeds, temperature, top_p, self.model.device)] if temperature > 0 else []
            with self.variant(name), torch.no_grad():
                output = self.model.generate(
                    **batch, max_new_tokens=max_new_tokens, eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
                    repetition_penalty=settings["repetition_penalty"],
                    do_sample=False, logits_processor=LogitsProcessorList(processors), streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([Cancel()]),
                )
            for i in range(n):
                new = until_end(output[min(i, rows - 1), prompt_len:].tolist(), self.eos_ids)
                stopped = "cancelled" if cancelled() else "eos" if new and new[-1] in self.eos_ids else "length"
                if i >= rows:  # greedy: the same text again, streamed as a whole
                    emit({**tags[i], "token": self.tokenizer.decode(new, skip_special_tokens=True)})
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                emit({**tags[i], "done": True, "text": text, "tokens": len(new), "stopped": stopped})

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
        max_len = int(self.adapters[0].cfg["model"]["max_seq_length"])
        data_format = request.get("data_format") or self.data_format
        if data_format not in DATA_FORMATS:
            raise GenerationError(f"unknown data_format {data_format!r}; use {' or '.join(DATA_FORMATS)}")
        if data_format == "raw_text":  # plain text: a long passage is scored in max_seq_length windows, not cut short
            rows = [{key: row[key][start : start + max_len] for key in row}
                    for row in tokenize_records(self.tokenizer, records, 10**9, data_format).rows
                    for start in range(0, len(row["input_ids"]), max_len)]
        else:
            rows = tokenize_records(self.tokenizer, records, max_len, data_format).rows
        tag = {"split": str(request["split"])} if request.get("split") else {}
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
                    # The last len(ids) positions: prompt tuning puts its virtual tokens' logits first.
                    logits = self.model(input_ids=ids).logits[:, -ids.shape[1]:-1].float()
                    total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum").item()
                    tokens += int((labels != -100).sum())
            loss = total / tokens if tokens else None
            emit({"id": request.get("id"), **tag, "variant": name, "eval_loss": loss,
                  "perplexity": math.exp(loss) if loss is not None and loss < 50 else None,
                  "tokens": int(tokens), "records": len(rows)})
