"""Time and cost per GPU type: the FLOPs arithmetic, fits per card, price overrides, config check and the panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import write_corpus
from stylelora_tui import config as config_mod
from stylelora_tui import paths
from stylelora_tui.cli.main import main
from stylelora_tui.training import cost
from stylelora_tui.training.estimate import GiB, estimate_for_config
from stylelora_tui.training.model_shapes import shape_for, shape_from_config

# A shape small enough to count by hand (see test_flops_per_token_by_hand).
SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": 512, "head_dim": 16, "tie_word_embeddings": True}


def small_model(tmp_path: Path) -> Path:
    folder = tmp_path / "small-model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(SMALL))
    return folder


def small_config(model: Path, **train) -> dict:
    cfg = config_mod.defaults()
    cfg["model"].update(name=str(model), max_seq_length=100, load_in_4bit=False)
    cfg["lora"].update(r=8, target_modules=["q_proj", "v_proj"])
    cfg["train"].update(per_device_train_batch_size=2, gradient_accumulation_steps=3, max_steps=10, packing=True,
                        gradient_checkpointing=False)
    cfg["train"].update(train)
    return cfg


def gpu(name="G", memory_gib=80.0, peak_tflops=1e-3, price=3.6, utilization=0.5, bf16=True) -> cost.GpuType:
    return cost.GpuType(name, memory_gib, peak_tflops, bf16, price, "test", utilization, "test")


def test_flops_per_token_by_hand() -> None:
    shape = shape_from_config(SMALL)
    # Linears a layer: q 64x64, k 64x32, v 64x32, o 64x64, gate/up/down 64x128: 36,864; x2 layers = 73,728.
    # LM head 512 x 64 = 32,768. LoRA r=8: q 8(64+64) + v 8(64+32) = 1,792 a layer, 3,584 in all.
    # Attention at context 100: 2 x 2 layers x 100 x q_dim 64 = 25,600.
    flops = cost.flops_per_token(shape, r=8, target_modules=["q_proj", "v_proj"], context=100,
                                 gradient_checkpointing=False)
    assert flops.forward == 2 * 73_728 + 2 * 32_768 + 2 * 3_584 + 25_600 == 245_760
    assert flops.backward == 2 * 73_728 + 2 * 32_768 + 4 * 3_584 + 2 * 25_600 == 278_528
    assert flops.recompute == 0 and flops.total == 524_288
    with_ckpt = cost.flops_per_token(shape, r=8, target_modules=["q_proj", "v_proj"], context=100,
                                     gradient_checkpointing=True)
    assert with_ckpt.recompute == 2 * 73_728 + 2 * 3_584 + 25_600  # the decoder layers again, not the LM head
    # For a real model a frozen base costs about 4 FLOPs a weight a token, not full training's 6.
    llama = shape_for("Llama-3.2-3B")
    real = cost.flops_per_token(llama, r=16, target_modules=config_mod.ALL_PROJECTIONS, context=2048,
                                gradient_checkpointing=False)
    assert 4.0 < real.total / (llama.linear_parameters() + llama.vocab_size * llama.hidden_size) < 4.5


def test_time_and_cost_from_the_config_by_hand(tmp_path: Path) -> None:
    cfg = small_config(small_model(tmp_path))
    table = cost.cost_table(cfg, tmp_path, gpus=[gpu()])
    # 10 steps x (2 x 3 sequences x 100 tokens, packed) = 6,000 tokens x 524,288 FLOPs at 1 GFLOP/s x 0.5.
    assert table.workload.tokens_per_step == 600 and table.workload.steps == 10
    row = table.rows[0]
    assert row.seconds == pytest.approx(6_000 * 524_288 / 5e8)  # 6.29 s
    assert row.cost == pytest.approx(row.seconds / 3600 * 3.6)
    assert row.tokens_per_s == pytest.approx(5e8 / 524_288)
    # train.gpus: DDP over N cards of the type; each runs its own micro-batches, so max_steps hold N times the
    # tokens at N times the speed (less the all-reduce), and N cards are paid for.
    cfg["train"]["gpus"] = 2
    ddp = cost.cost_table(cfg, tmp_path, gpus=[gpu()])
    assert ddp.workload.tokens_per_step == 2 * 600
    assert ddp.rows[0].seconds == pytest.approx(row.seconds / cost.DDP_EFFICIENCY)
    assert ddp.rows[0].cost == pytest.approx(ddp.rows[0].seconds / 3600 * 3.6 * 2)
    assert ddp.rows[0].memory_bytes == row.memory_bytes
    cfg["train"]["gpus"] = 0  # every visible GPU: unknown before the launch, so one
    assert cost.cost_table(cfg, tmp_path, gpus=[gpu()]).rows[0].seconds == pytest.approx(row.seconds)
    # QLoRA's dequantization and DoRA are the method's overhead.
    cfg["model"]["load_in_4bit"], cfg["lora"]["use_dora"] = True, True
    slower = cost.cost_table(cfg, tmp_path, gpus=[gpu()]).rows[0]
    assert slower.seconds == pytest.approx(row.seconds * cost.QLORA_OVERHEAD * cost.DORA_OVERHEAD)


def test_steps_from_epochs_over_the_corpus_and_tokens_from_its_records(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus", train=24)
    cfg = small_config(small_model(tmp_path), max_steps=-1, num_train_epochs=2.0, packing=False,
                       per_device_train_batch_size=1, gradient_accumulation_steps=4)
    cfg["model"]["max_seq_length"] = 4096
    work = cost.workload(cfg, tmp_path)
    assert work.steps == 2 * 6  # 24 records, 1 x 4 a step, two epochs
    stats = cost.corpus_stats(tmp_path / "corpus")
    assert stats.records == 24 and not stats.exact
    record = json.loads((tmp_path / "corpus" / "train.jsonl").read_text().splitlines()[0])
    words = sum(len(record[k].split()) for k in ("instruction", "input", "output"))
    assert 0.5 * words * 1.3 < stats.mean_tokens < 2 * words * 1.3 + 16
    assert work.tokens_per_step == 4 * round(stats.mean_tokens) and "mean record" in work.note
    cfg["train"]["gpus"] = 2  # DDP: two processes share each epoch's records
    ddp = cost.workload(cfg, tmp_path)
    assert ddp.steps == 2 * 3 and ddp.tokens == work.tokens


def test_fits_flips_with_the_cards_memory_and_auto_checkpointing_is_decided_per_card(tmp_path: Path) -> None:
    cfg = small_config(small_model(tmp_path), gradient_checkpointing="auto")
    cfg["model"]["name"] = "Llama-3.2-3B"
    cfg["model"].update(max_seq_length=2048, load_in_4bit=True)
    without = estimate_for_config(cost._with_checkpointing(cfg, False)).memory.total
    with_ = estimate_for_config(cost._with_checkpointing(cfg, True)).memory.total
    assert with_ < without
    roomy, middle, small = (gpu("roomy", 2 * without / GiB), gpu("middle", 1.1 * with_ / GiB / 0.8),
                            gpu("small", 0.9 * with_ / GiB))
    rows = {r.gpu.name: r for r in cost.cost_table(cfg, tmp_path, gpus=[roomy, middle, small]).rows}
    assert rows["roomy"].verdict == "fits" and not rows["roomy"].checkpointing
    assert rows["middle"].runs and rows["middle"].checkpointing  # too big without it: on, as the trainer decides
    assert rows["middle"].seconds > rows["roomy"].seconds  # the recompute costs time
    assert rows["small"].verdict == "won't fit" and not rows["small"].runs
    cfg["train"]["bf16"] = True
    assert cost.cost_table(cfg, tmp_path, gpus=[gpu("T4-like", 80, bf16=False)]).rows[0].verdict == "no bf16"


def test_the_table_ships_every_card_of_the_issue_with_a_dated_price() -> None:
    gpus = {g.name: g for g in cost.gpu_types()}
    assert {"T4", "L4", "A10G", "A100 40GB", "A100 80GB", "H100", "H200", "CPU 2-core"} <= set(gpus)
    assert not gpus["T4"].bf16 and gpus["H100"].bf16
    assert all(0 < g.utilization < 1 and g.peak_tflops > 0 and g.price_source and g.utilization_source
               for g in gpus.values())
    assert "as of 2025" in cost.prices_note()


def write_settings(text: str) -> Path:
    path = paths.config_dir() / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_price_in_settings_changes_the_cost_and_survives_the_app_saving_its_settings(tmp_path: Path) -> None:
    from stylelora_tui.themes.settings import Settings

    write_settings('theme = "stylelora-dark"\n[gpu_prices]\n"a100 80gb" = 10.0\nH100 = "cheap"\nB200 = 5\n')
    prices, problems = cost.load_price_overrides()
    assert prices == {"A100 80GB": 10.0}
    assert any("'H100' needs dollars per hour" in p for p in problems)
    assert any("'B200' is not a GPU of the table" in p for p in problems)
    cfg = small_config(small_model(tmp_path))
    table = {r.gpu.name: r for r in cost.cost_table(cfg, tmp_path).rows}
    overridden = {r.gpu.name: r for r in cost.cost_table(cfg, tmp_path, prices=prices).rows}
    assert overridden["A100 80GB"].cost == pytest.approx(overridden["A100 80GB"].seconds / 3600 * 10.0)
    assert overridden["A100 80GB"].cost != table["A100 80GB"].cost
    assert overridden["H100"].cost == table["H100"].cost
    settings = Settings.load()
    assert settings.gpu_prices == {"A100 80GB": 10.0} and len(settings.problems) == 2
    settings.theme = "stylelora-light"
    settings.save()  # the app saves on a theme change: the user's prices stay
    assert Settings.load().gpu_prices == {"A100 80GB": 10.0}


def test_config_check_prints_time_and_cost_per_card_with_the_users_price(tmp_path: Path, capsys) -> None:
    write_corpus(tmp_path / "corpus")
    write_settings('[gpu_prices]\nH200 = 7.5\n')
    cfg = config_mod.preset("lab")
    cfg["train"]["max_steps"] = 100
    path = tmp_path / "configs" / "lab.yaml"
    config_mod.save(path, cfg)
    assert main(["config", "check", str(path), "-w", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    work = cost.workload(cfg, tmp_path)
    assert 8 * 16 < work.tokens_per_step < 8 * 2048  # 2 x 4 records of the corpus, padded, not 2 x 4 x 2048
    assert f"Time and cost: 100 steps of {work.tokens_per_step:,} tokens" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    for name in ("T4", "L4", "A10G", "H100", "H200", "CPU"):
        assert name in rows
    assert "7.50" in rows["H200"] and "$" in rows["H200"]
    assert "[gpu_prices] in" in out and "as of 2025" in out


def test_config_check_says_why_there_is_no_table_for_an_unknown_model(tmp_path: Path, capsys) -> None:
    write_corpus(tmp_path / "corpus")
    cfg = config_mod.defaults()
    cfg["model"]["name"] = "someone/unknown-model"
    path = tmp_path / "configs" / "x.yaml"
    config_mod.save(path, cfg)
    assert main(["config", "check", str(path), "-w", str(tmp_path)]) == 0
    assert "not estimated: the shape of 'someone/unknown-model' is unknown" in capsys.readouterr().out


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_panel_shows_time_and_cost_per_card_at_80x24_and_follows_the_form(tmp_path: Path, anyio_backend) -> None:
    from stylelora_tui.screens.app import make_app

    workspace = tmp_path / "ws"
    write_corpus(workspace / "corpus")
    write_settings('[gpu_prices]\n"A100 40GB" = 2.0\n')
    cfg = config_mod.preset("lab")
    cfg["train"]["max_steps"] = 100
    config_mod.save(workspace / "configs" / "lab.yaml", cfg)
    app = make_app(workspace, start="config", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        await pilot.pause()
        panel = app.screen.query_one("#cost")
        lines = panel.plain.splitlines()[1:]
        for name in ("T4", "L4", "A10G", "A100 40GB", "A100 80GB", "H100", "H200", "CPU 2-core"):
            assert any(line.startswith(name + " ") for line in lines), name
        h200 = next(line for line in lines if line.startswith("H200 "))
        assert h200.split()[1] == "ok" and re.fullmatch(r"[\d.]+[smhd]", h200.split()[2]) and h200.split()[3].startswith("$")
        grid = app.screen.query_one("#cost-table")
        assert grid.row_count == len(cost.gpu_types())
        assert grid.region.bottom <= 23 and grid.region.right <= 80  # whole on an 80x24 screen
        before = panel.table.rows[0].seconds
        # Keyboard: shift+tab goes to the first field, again wraps to the table; arrows show a card's details.
        await pilot.press("shift+tab", "shift+tab")
        assert app.focused is grid
        await pilot.press("down", "down", "down")
        detail = str(app.screen.query_one("#cost-detail").render())
        assert detail.startswith("A100 40GB:") and "$2.00/h: your settings.toml [gpu_prices]" in detail
        field = app.screen.query_one("#f-train-max_steps")
        field.focus()
        field.value = "200"
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert panel.table.rows[0].seconds == pytest.approx(2 * before)
