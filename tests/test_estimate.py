"""The estimator against published figures (sources in docs/estimator.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from stylelora_tui.training.estimate import (
    CARDS,
    MemoryEstimate,
    ModelShape,
    estimate_for_config,
    estimate_memory,
    format_bytes,
    lora_parameters,
    shape_for,
    verdicts,
)

ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GiB = 1024**3


def config(name="unsloth/Llama-3.2-3B-Instruct-bnb-4bit", **over):
    """The Unsloth Llama-3.2-3B notebook's settings as a run config."""
    cfg = {
        "model": {"name": name, "max_seq_length": 2048, "load_in_4bit": True, "backend": "unsloth"},
        "lora": {"r": 16, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": list(ALL7),
                 "use_rslora": False, "use_dora": False},
        "train": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
                  "learning_rate": 2e-4, "num_train_epochs": 1, "max_steps": 60,
                  "gradient_checkpointing": True, "optim": "adamw_8bit", "bf16": "auto"},
        "data": {"corpus": "corpus"},
    }
    for dotted, value in over.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    return cfg


def mem(shape, **kw):
    args = dict(load_in_4bit=True, r=16, target_modules=ALL7, batch_size=2, seq_len=2048)
    args.update(kw)
    return estimate_memory(shape, **args)


# --- shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, total",
    [
        # Parameter counts the model cards publish (rounded as published).
        ("meta-llama/Llama-3.2-1B-Instruct", 1.24e9),
        ("unsloth/Llama-3.2-3B-Instruct-bnb-4bit", 3.21e9),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", 8.03e9),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 134.5e6),
        ("HuggingFaceTB/SmolLM2-360M", 362e6),
        ("HuggingFaceTB/SmolLM2-1.7B-Instruct", 1.71e9),
        ("Qwen/Qwen2.5-0.5B-Instruct", 494e6),
        ("Qwen/Qwen2.5-1.5B", 1.54e9),
        ("unsloth/Qwen2.5-3B-Instruct-bnb-4bit", 3.09e9),
        ("Qwen/Qwen2.5-7B-Instruct", 7.62e9),
        ("mistralai/Mistral-7B-Instruct-v0.3", 7.25e9),
    ],
)
def test_builtin_shapes_match_published_parameter_counts(name, total):
    shape = shape_for(name)
    assert shape is not None, name
    assert shape.total_parameters() == pytest.approx(total, rel=0.005)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("demo", "SmolLM2-135M"),
        ("unsloth/Llama-3.2-3B-Instruct-unsloth-bnb-4bit", "Llama-3.2-3B"),
        ("llama-3.2-1b", "Llama-3.2-1B"),
        ("unsloth/Meta-Llama-3.1-8B-bnb-4bit", "Llama-3.1-8B"),
        ("/models/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M"),
        ("unsloth/mistral-7b-v0.3-bnb-4bit", "Mistral-7B-v0.3"),
        ("QWEN/QWEN2.5-1.5B-INSTRUCT", "Qwen2.5-1.5B"),
    ],
)
def test_shape_for_is_robust_to_prefixes_and_suffixes(name, expected):
    shape = shape_for(name)
    assert shape is not None and shape.name == expected


@pytest.mark.parametrize(
    "name", ["gpt2", "Qwen/Qwen2.5-32B", "meta-llama/Llama-3.2-11B-Vision", "", "no-such-model"]
)
def test_unknown_model_is_none(name):
    assert shape_for(name) is None
    cfg = config(name)
    assert estimate_for_config(cfg) is None


def write_config(folder, **values):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
        "tie_word_embeddings": False, "max_position_embeddings": 1024,
    }
    cfg.update(values)
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return folder


def test_shape_for_reads_local_config_json(tmp_path):
    folder = write_config(tmp_path / "tiny-llama")
    shape = shape_for(str(folder))
    assert shape == ModelShape("tiny-llama", 64, 256, 2, 4, 2, 512, False, None, 1024)
    # embed 512*64 + lm_head 512*64 + per layer (q 64*64 + k,v 64*32*2 + o 64*64 + mlp 3*64*256)
    # + norms (2*2+1)*64
    assert shape.total_parameters() == 2 * 512 * 64 + 2 * (4096 + 4096 + 4096 + 49152) + 5 * 64
    est = estimate_for_config(config(str(folder)))
    assert est is not None and est.shape_source == f"config.json at {folder / 'config.json'}"


def test_local_config_wins_over_the_table_and_is_found_under_search_dirs(tmp_path):
    # A folder named like a table entry but with other numbers: config.json is the truth.
    write_config(tmp_path / "models" / "Llama-3.2-3B", hidden_size=128)
    shape = shape_for("Llama-3.2-3B", search_dirs=[tmp_path / "models"])
    assert shape.hidden_size == 128
    assert shape_for("Llama-3.2-3B").hidden_size == 3072
    # Hugging Face cache layout.
    snap = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "abc123"
    write_config(snap)
    assert shape_for("acme/tiny", search_dirs=[tmp_path / "hub"]).hidden_size == 64


def test_changed_config_json_is_reread(tmp_path):
    import os

    folder = write_config(tmp_path / "m")
    assert shape_for(str(folder)).num_hidden_layers == 2
    write_config(folder, num_hidden_layers=3)
    stat = (folder / "config.json").stat()
    os.utime(folder / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert shape_for(str(folder)).num_hidden_layers == 3


def test_broken_config_json_falls_back_to_none(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    assert shape_for(str(folder)) is None


# --- trainable parameters -----------------------------------------------------


def test_llama_3_2_3b_r16_all_projections_matches_unsloth_notebook():
    # Unsloth's Llama-3.2-3B notebook prints "Trainable parameters = 24,313,856".
    assert lora_parameters(shape_for("unsloth/Llama-3.2-3B-Instruct"), 16, ALL7) == 24_313_856


def test_smollm2_135m_r16_all_projections_matches_measured():
    # Measured on this project's machine with PEFT: 4.88 M (docs ENVIRONMENT.md).
    assert lora_parameters(shape_for("demo"), 16, ALL7) == 4_884_480


def test_llama_3_1_8b_r16_all_projections():
    # Unsloth's Llama-3.1-8B notebook: "Trainable parameters = 41,943,040".
    assert lora_parameters(shape_for("unsloth/Meta-Llama-3.1-8B"), 16, ALL7) == 41_943_040


def test_lora_parameters_scale_with_r_and_modules_and_dora():
    shape = shape_for("demo")
    assert lora_parameters(shape, 32, ALL7) == 2 * lora_parameters(shape, 16, ALL7)
    qv = lora_parameters(shape, 16, ["q_proj", "v_proj"])
    # q: 576 -> 576, v: 576 -> 192 (3 kv heads x 64), 30 layers
    assert qv == 30 * 16 * ((576 + 576) + (576 + 192))
    # DoRA adds one magnitude per output feature of each targeted module.
    assert lora_parameters(shape, 16, ["q_proj", "v_proj"], use_dora=True) == qv + 30 * (576 + 192)
    assert lora_parameters(shape, 16, ["lm_head", "nonsense"]) == 0


def test_estimate_for_config_reports_params_and_share():
    est = estimate_for_config(config())
    assert est.trainable_parameters == 24_313_856
    assert est.total_parameters == 3_212_749_824
    # Unsloth's banner counts the LoRA in the total (24,313,856 of 3,237,063,680,
    # 0.75 %); our share is of the base model: 0.757 %.
    assert est.trainable_share == pytest.approx(0.757, abs=0.005)
    assert est.shape_source == "built-in table: Llama-3.2-3B"


# --- memory ---------------------------------------------------------------------


def test_unsloth_t4_notebook_peak_reserved_within_25_percent():
    # Unsloth Llama-3.2-3B notebook on a Tesla T4: max_seq_length 2048, batch 2,
    # r=16, 4-bit, adamw_8bit: "Peak reserved memory = 6.53 GB" of 14.75 GB
    # (torch.cuda.max_memory_reserved() / 1024**3, so GiB).
    est = estimate_for_config(config())
    published = 6.53 * GiB
    assert 0.75 * published <= est.memory.reserved <= 1.25 * published
    t4 = dict((name, (verdict, headroom)) for name, verdict, headroom in est.verdicts)["T4 16 GB"]
    assert t4[0] == "fits" and t4[1] > 0


def test_torchtune_llama_3_2_3b_qlora_and_lora_figures():
    # torchtune, Llama-3.2-3B on an A100, 4096-token packed batches: QLoRA 4.6 GiB,
    # LoRA 8.5 GiB peak. A different stack, so a loose bound on the level...
    shape = shape_for("meta-llama/Llama-3.2-3B")
    mods = ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    kw = dict(r=8, target_modules=mods, batch_size=1, seq_len=4096, optim="adamw_torch", backend="peft")
    qlora = estimate_memory(shape, load_in_4bit=True, **kw)
    lora = estimate_memory(shape, load_in_4bit=False, **kw)
    assert 0.75 * 4.6 * GiB <= qlora.reserved <= 2.0 * 4.6 * GiB
    assert 0.75 * 8.5 * GiB <= lora.reserved <= 2.0 * 8.5 * GiB
    # ... and a tight one on the difference, which is the weights' 16-bit vs NF4 size.
    assert lora.reserved - qlora.reserved == pytest.approx((8.5 - 4.6) * GiB, rel=0.15)


def test_nf4_weights_of_the_3b_model():
    # 2.82 B linear weights at 4 bits + 8-bit absmax per 64 + fp32 per 256 blocks,
    # plus the tied 128256 x 3072 embedding in 16 bit. Unsloth's bnb-4bit checkpoint
    # of this model is 2.24 GB on disk.
    m = mem(shape_for("Llama-3.2-3B"))
    assert m.weights == pytest.approx(2.24e9, rel=0.03)
    assert mem(shape_for("Llama-3.2-3B"), load_in_4bit=False).weights == 2 * 3_212_749_824


@pytest.mark.parametrize(
    "change",
    [
        dict(r=64),
        dict(seq_len=4096),
        dict(batch_size=4),
        dict(load_in_4bit=False),
        dict(gradient_checkpointing=False),
        dict(optim="adamw_torch"),
        dict(use_dora=True),
        dict(target_modules=ALL7 + ["q_proj"], r=17),
    ],
)
@pytest.mark.parametrize("backend", ["unsloth", "peft"])
def test_memory_grows_with_each_knob(change, backend):
    shape = shape_for("Llama-3.2-3B")
    base = mem(shape, backend=backend, optim="adamw_8bit")
    more = mem(shape, backend=backend, **{"optim": "adamw_8bit", **change})
    assert more.total > base.total


def test_fewer_target_modules_need_less():
    shape = shape_for("Llama-3.2-3B")
    assert mem(shape, target_modules=["q_proj", "v_proj"]).total < mem(shape).total


def test_full_logits_are_the_big_forgotten_term():
    # batch 2 x 2048 x 128256 vocab: 525 M logits; materialized with an fp32 upcast
    # they dwarf the chunked loss both stacks use.
    shape = shape_for("Llama-3.2-3B")
    chunked = mem(shape)
    full = mem(shape, chunked_loss=False)
    assert full.logits >= 4 * 2 * 2048 * 128256
    assert full.logits > 8 * chunked.logits


def test_unsloth_offloads_checkpoints_peft_keeps_them():
    shape = shape_for("Llama-3.2-3B")
    u, p = mem(shape, backend="unsloth"), mem(shape, backend="peft")
    one_hidden_state = 2 * 2048 * 3072 * 2
    assert u.host_offload == 28 * one_hidden_state
    assert p.host_offload == 0
    assert p.activations > u.activations + 20 * one_hidden_state


def test_8b_in_16_bit_does_not_fit_a_t4():
    est = estimate_for_config(config("meta-llama/Llama-3.1-8B-Instruct", model__load_in_4bit=False))
    v = {name: verdict for name, verdict, _ in est.verdicts}
    assert v["T4 16 GB"] == "won't fit"
    assert v["H200 141 GB"] == "fits"


def test_verdict_thresholds():
    def fake(total):
        return MemoryEstimate(total, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    t4 = CARDS[0]
    assert verdicts(fake(int(0.5 * t4.usable_bytes)), [t4])[0][1] == "fits"
    assert verdicts(fake(int(0.95 * t4.usable_bytes)), [t4])[0][1] == "tight"
    name, verdict, headroom = verdicts(fake(t4.usable_bytes + 1), [t4])[0]
    assert (name, verdict, headroom) == ("T4 16 GB", "won't fit", -1)
    assert [c.name for c in CARDS] == [
        "T4 16 GB", "L4 24 GB", "A100 40 GB", "A100 80 GB", "H100 80 GB", "H200 141 GB"]


def test_breakdown_sums_to_total_and_reserved_excludes_context():
    m = estimate_for_config(config()).memory
    assert sum(b for _, b in m.breakdown()) == m.total
    assert m.total - m.reserved == m.cuda_context > 0
    assert all(b >= 0 for _, b in m.breakdown())


def test_estimate_for_config_follows_the_form():
    small = estimate_for_config(config()).memory.total
    assert estimate_for_config(config(lora__r=64)).memory.total > small
    assert estimate_for_config(config(model__max_seq_length=4096)).memory.total > small
    assert estimate_for_config(config(train__gradient_checkpointing=False)).memory.total > small
    # fp32 compute (bf16 off, fp16 off) costs more than 16-bit.
    assert estimate_for_config(config(train__bf16=False)).memory.total > small
    # Bad values from a half-typed form do not raise.
    odd = config(lora__r="", train__per_device_train_batch_size=None, lora__target_modules="all-linear")
    assert estimate_for_config(odd).trainable_parameters == 24_313_856
    assert estimate_for_config({}) is None
    assert estimate_for_config({"model": {"name": 3}}) is None


def test_format_bytes():
    assert format_bytes(6.53 * GiB) == "6.5 GB"
    assert format_bytes(140 * GiB) == "140 GB"
    assert format_bytes(92.8 * 1024**2) == "92.8 MB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(-1.5 * GiB) == "-1.5 GB"


def test_ten_thousand_estimates_well_under_a_second():
    cfg = config()
    estimate_for_config(cfg)
    start = time.perf_counter()
    for i in range(10_000):
        cfg["lora"]["r"] = 8 + i % 64
        estimate_for_config(cfg)
    assert time.perf_counter() - start < 1.0


def test_estimator_imports_nothing_heavy():
    code = (
        "import sys, stylelora_tui.training.estimate as e; e.estimate_for_config({'model': {'name': 'demo'}});"
        "bad = [m for m in ('torch', 'transformers', 'textual', 'peft', 'trl', 'unsloth', 'yaml')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
