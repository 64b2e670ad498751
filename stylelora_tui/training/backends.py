"""Model loading and trainer construction, per backend. Runs in the trainer process only.

- ``unsloth``: the lab's path. Unsloth ``FastLanguageModel`` (4-bit or 16-bit)
  with ``get_peft_model``, trained by TRL's ``SFTTrainer`` (Unsloth patches it).
- ``peft``: plain Hugging Face. ``AutoModelForCausalLM`` (bitsandbytes NF4 when
  4-bit), PEFT ``get_peft_model``, trained by transformers' ``Trainer`` with the
  standard causal-LM loss. (TRL 1.15's ``SFTTrainer`` swaps in a Triton log-prob
  kernel that cannot run without a GPU, so this path keeps to transformers.)

Both train on the same pre-tokenized records (``prompting.tokenize_records``),
so the two backends see identical tokens and masks.

Heavy imports happen inside the functions; Unsloth must be imported before
transformers, trl and peft, so ``import_backend`` runs first.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    backend: str
    dtype: str
    trainable: int
    total: int
    lora_plus_ratio: float | None = None  # loraplus: build_trainer hands the Trainer PEFT's LoRA+ optimizer


def choose_backend(requested: str, processes: int = 1, method: str = "lora") -> tuple[str, str | None]:
    """(backend, note). ``auto`` is Unsloth when it is installed, else plain PEFT; several processes use PEFT.

    A ``lora.method`` Unsloth cannot build goes to plain PEFT, with the reason, even when Unsloth was asked for.
    """
    from stylelora_tui.training.methods import unsloth_note as method_note

    note = method_note(method)
    if note and requested != "peft":
        return "peft", note
    if processes > 1 and requested != "peft":
        from stylelora_tui.training.distributed import unsloth_note

        return "peft", unsloth_note(processes)
    if requested != "auto":
        return requested, None
    if importlib.util.find_spec("unsloth") is None:
        return "peft", "Unsloth is not installed; using the plain transformers + PEFT backend"
    return "unsloth", None


def import_backend(backend: str) -> None:
    """Import Unsloth first (it patches transformers, trl and peft)."""
    if backend == "unsloth":
        import unsloth  # noqa: F401


def cpu_description() -> str:
    """How the CPU is named in events, status and the generation process's ready line."""
    return f"cpu ({os.cpu_count()} threads)"


def device_description() -> str:
    """The device a model lands on here: ``cuda:N (NAME)`` or ``cpu (N threads)`` (trainer and generation alike)."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return cpu_description()


def four_bit_config(compute_dtype: Any) -> Any:
    """The NF4 quantization both training and generation load a 4-bit base with."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype
    )


def cpu_bf16_supported() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), as oneDNN reports it."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def device_and_dtype(bf16_setting: Any) -> tuple[str, bool, bool]:
    """(device, bf16, fp16) following ``train.bf16`` (auto = where supported), on a GPU and on a CPU alike.

    bf16 means what runs: the base weights are loaded in bfloat16 (both
    backends), the adapter weights stay float32, and the Trainer computes
    under bfloat16 autocast. On a CPU, "auto" is bf16 where the CPU has native
    bfloat16 (measured: docs/benchmarks.md); false is float32 throughout.
    """
    import torch

    if torch.cuda.is_available():
        supported = torch.cuda.is_bf16_supported()
        where = "this GPU"
        device = device_description()
    else:
        supported = cpu_bf16_supported()
        where = "this CPU (no AVX512-BF16 or AMX)"
        device = cpu_description()
    bf16 = supported if bf16_setting == "auto" else bool(bf16_setting)
    if bf16 and not supported:
        raise ValueError(f"train.bf16 is true but {where} does not support bfloat16; set it to auto or false")
    fp16 = not bf16 and torch.cuda.is_available()
    return device, bf16, fp16


def checkpointing_decision(setting: Any, estimate_bytes: int | None, available_bytes: int | None) -> tuple[bool, str]:
    """(gradient checkpointing on?, why), for ``train.gradient_checkpointing`` true, false or auto.

    auto turns it on only when the memory estimate without it does not fit in
    80% of the device's memory (a GPU's, or the RAM available on a CPU):
    recomputing every layer's activations costs about a third of each step.
    """
    if setting is not None and setting != "auto":
        return bool(setting), "set in the config"
    if estimate_bytes is None or not available_bytes:
        return True, "auto: no memory estimate for this model, so on to be safe"
    gib = 2**30
    figures = f"{estimate_bytes / gib:.1f} GiB estimated without it, {available_bytes / gib:.1f} GiB available"
    return estimate_bytes > 0.8 * available_bytes, f"auto: {figures}"


def available_memory() -> int | None:
    """Bytes the trainer may use: the GPU's total memory, or the RAM available now on a CPU."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except (ImportError, OSError):
        return None


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter.numel()
        # bitsandbytes packs two 4-bit values per byte-sized element.
        if parameter.__class__.__name__ == "Params4bit":
            count *= 2
        total += count
        if parameter.requires_grad:
            trainable += count
    return trainable, total


def load(model_path: str, cfg: dict[str, dict[str, Any]], backend: str, bf16: bool, checkpointing: bool) -> Loaded:
    import torch

    model_cfg = cfg["model"]
    weights_dtype = torch.bfloat16 if bf16 else (torch.float16 if torch.cuda.is_available() else torch.float32)
    from stylelora_tui.training import methods

    # The config's lora section uses LoraConfig's own names, for both backends.
    lora = methods.lora_kwargs(cfg["lora"])
    if backend == "unsloth":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=model_path,
            max_seq_length=model_cfg["max_seq_length"],
            load_in_4bit=model_cfg["load_in_4bit"],
            dtype=weights_dtype,  # explicit: left to Unsloth (None), a CPU got bf16 whatever train.bf16 said
        )
        model = FastLanguageModel.get_peft_model(
            model,
            **lora,
            use_gradient_checkpointing="unsloth" if checkpointing else False,
            random_state=cfg["train"]["seed"],
        )
    else:
        from peft import get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {}
        if model_cfg["load_in_4bit"]:
            kwargs["quantization_config"] = four_bit_config(torch.bfloat16 if bf16 else torch.float32)
        dtype = torch.bfloat16 if bf16 else torch.float32
        if torch.cuda.is_available():
            # One GPU per DDP rank (accelerate sets LOCAL_RANK), else the current device.
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))}
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, **kwargs)
        if model_cfg["load_in_4bit"]:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
        elif checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        model = get_peft_model(model, methods.peft_config(cfg, model_path))
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # pad == eos makes the padding mask hide the real end of each sample.
        candidates = [t for t in ("<|finetune_right_pad_id|>", "<|endoftext|>", "<pad>", "<|pad|>", "<unk>") if t in tokenizer.get_vocab()]
        if candidates and tokenizer.convert_tokens_to_ids(candidates[0]) != tokenizer.eos_token_id:
            tokenizer.pad_token = candidates[0]
    trainable, total = count_parameters(model)
    dtype_name = str(getattr(model, "dtype", "")).replace("torch.", "")
    if model_cfg["load_in_4bit"]:
        dtype_name = f"nf4 weights, {'bfloat16' if bf16 else dtype_name} compute"
    ratio = float(cfg["lora"]["loraplus_lr_ratio"]) if methods.method_of(cfg["lora"]) == "loraplus" else None
    return Loaded(model, tokenizer, backend, dtype_name, trainable, total, ratio)


def training_arguments(cfg: dict[str, dict[str, Any]], output_dir: str, *, bf16: bool, fp16: bool, has_eval: bool, backend: str,
                       checkpointing: bool) -> Any:
    """SFTConfig (Unsloth) or TrainingArguments (plain PEFT) from the config's train section."""
    import torch

    train = cfg["train"]
    optim = train["optim"]
    if optim == "auto":
        optim = "adamw_8bit" if torch.cuda.is_available() else "adamw_torch"
    eval_steps = train["eval_steps"] or train["save_steps"]
    common: dict[str, Any] = dict(
        output_dir=output_dir,
        per_device_train_batch_size=train["per_device_train_batch_size"],
        per_device_eval_batch_size=train["per_device_train_batch_size"],
        gradient_accumulation_steps=train["gradient_accumulation_steps"],
        learning_rate=train["learning_rate"],
        num_train_epochs=train["num_train_epochs"],
        max_steps=train["max_steps"],
        logging_steps=train["logging_steps"],
        save_strategy="steps",
        save_steps=train["save_steps"],
        save_total_limit=train["save_total_limit"],
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        warmup_steps=train["warmup_steps"],
        lr_scheduler_type=train["lr_scheduler_type"],
        weight_decay=train["weight_decay"],
        max_grad_norm=train["max_grad_norm"],
        optim=optim,
        seed=train["seed"],
        bf16=bf16,
        fp16=fp16,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # DDP (train.gpus > 1): every LoRA weight gets a gradient at every step; searching for unused ones
        # costs a graph walk per step and breaks with gradient checkpointing.
        ddp_find_unused_parameters=False,
    )
    if backend == "unsloth":
        from trl import SFTConfig

        return SFTConfig(
            **common,
            max_length=cfg["model"]["max_seq_length"],
            completion_only_loss=True,
            packing=False,  # rows come packed already where train.packing asks (prompting.pack_rows)
            # As in the lab notebook (TRL's default); Unsloth's get_peft_model has
            # already installed its own offloaded checkpointing behind this flag.
            gradient_checkpointing=checkpointing,
            dataset_num_proc=1,
        )
    from transformers import TrainingArguments

    return TrainingArguments(**common, gradient_checkpointing=False)


def completion_collator(pad_token_id: int) -> Callable[[list[dict[str, list[int]]]], dict[str, Any]]:
    """Pads a batch and hides prompt and padding tokens from the loss (-100)."""
    import torch

    def collate(rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            ids = torch.tensor(row["input_ids"], dtype=torch.long)
            mask = torch.tensor(row["completion_mask"], dtype=torch.bool)
            input_ids[i, : len(ids)] = ids
            attention[i, : len(ids)] = 1
            labels[i, : len(ids)] = torch.where(mask, ids, torch.full_like(ids, -100))
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}

    return collate


def build_trainer(loaded: Loaded, args: Any, train_rows: list[dict], eval_rows: list[dict], callbacks: list[Any]) -> Any:
    from datasets import Dataset

    train_ds = Dataset.from_list(train_rows)
    eval_ds = Dataset.from_list(eval_rows) if eval_rows else None
    optimizers: tuple[Any, Any] = (None, None)  # the Trainer's own optimizer and schedule
    if loaded.lora_plus_ratio:
        from stylelora_tui.training.methods import loraplus_optimizer

        optimizers = (loraplus_optimizer(loaded.model, args, loaded.lora_plus_ratio), None)
    if loaded.backend == "unsloth":
        from trl import SFTTrainer

        return SFTTrainer(
            model=loaded.model,
            processing_class=loaded.tokenizer,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            args=args,
            callbacks=callbacks,
            optimizers=optimizers,
        )
    from transformers import Trainer

    return Trainer(
        model=loaded.model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=completion_collator(loaded.tokenizer.pad_token_id),
        callbacks=callbacks,
        optimizers=optimizers,
    )
