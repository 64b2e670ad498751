"""compare.html: escaped model text, self-contained, and the compare command end to end."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import cli_env, stylelora_command
from stylelora_tui.compare import html as compare_html
from stylelora_tui.compare.build import pick_prompts
from stylelora_tui.compare.forgetting import forgetting_report

EVIL = "<script>alert(1)</script> \"double\" 'single' & </p><img src=x onerror=alert(2)>"
EVENTS = [
    {"type": "log", "step": 1, "loss": 2.5}, {"type": "log", "step": 2, "loss": 2.0},
    {"type": "eval", "step": 2, "eval_loss": 2.2}, {"type": "log", "step": 3, "loss": 1.6},
]


def page_data(text: str = EVIL) -> dict:
    sample = lambda seed: {"seed": seed, "text": text, "tokens": 12, "stopped": "eos"}  # noqa: E731
    return {
        "run": "run-" + text, "model": "demo", "device": "cpu", "variants": ["base", "run-a"],
        "settings": {"samples": 2, "seed": 0, "temperature": 0.7},
        "prompts": [{"instruction": text, "prompt": text, "reference": text,
                     "samples": {"base": [sample(0), sample(1)], "run-a": [sample(0), sample(1)]}}],
        "style": {"reading": "adapted is closer " + text, "method": "Burrows's Delta",
                  "author": {"mean_sentence_length": 9.0, "mattr": 0.7},
                  "variants": {"base": {"delta": 1.4, "loop_share": 0.5}, "run-a": {"delta": 0.9, "loop_share": 0.0}}},
        "eval_loss": {"base": {"eval_loss": 2.5, "perplexity": 12.2}, "run-a": {"eval_loss": 1.9, "perplexity": 6.7}},
        "config": {"model": {"name": text}, "lora": {"r": 16}},
    }


def test_model_text_is_escaped_and_no_script_tag_survives():
    page = compare_html.render(page_data(), EVENTS)
    assert "<script" not in page.lower()
    assert "<img" not in page.lower() and "onerror=alert" not in page.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;double&quot;" in page and "&#x27;single&#x27;" in page and " &amp; " in page
    # Every sample of both sides is on the page (2 samples x 2 variants, plus prompt, reference...).
    assert page.count("&lt;script&gt;alert(1)") >= 4 + 3


def test_page_is_self_contained_and_responsive():
    page = compare_html.render(page_data("The fog came in."), EVENTS)
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"\b(src|href)\s*=", page, re.I)
    assert "url(" not in page and "@import" not in page
    assert "@media (max-width: 720px)" in page and "grid-template-columns: 1fr" in page
    assert '<meta name="viewport"' in page
    assert "<svg" in page and "<polyline" in page and "<circle" in page  # train line and eval dot


def test_the_score_table_shows_the_share_of_samples_that_loop():
    page = compare_html.render(page_data("The fog came in."), EVENTS)
    assert "samples that loop" in page
    assert "<th>base</th><td>1.400</td><td>n/a</td><td>n/a</td><td>50%</td>" in page
    assert "<th>run-a</th><td>0.900</td><td>n/a</td><td>n/a</td><td>0%</td>" in page


def test_the_forgetting_check_shows_each_side_and_flags_a_rise_over_the_threshold():
    data = page_data("The fog came in.")
    data["variants"] = ["base", "run-a", "run-b"]
    data["general_loss"] = {"base": {"eval_loss": 3.0}, "run-a": {"eval_loss": 3.06}, "run-b": {"eval_loss": 3.3}}
    data["forgetting"] = forgetting_report(data["general_loss"], data["eval_loss"], "base", "my <news>.txt")
    page = compare_html.render(data, EVENTS)
    assert "general English loss</th>" in page and "<td>3.060</td></tr>" in page
    assert "<h2>Forgetting check</h2>" in page and "my &lt;news&gt;.txt" in page
    assert "<li><b>run-a</b>: general English: loss 3.000 -&gt; 3.060 (+2.0%), within 5%</li>" in page
    assert '<li class="warn"><b>run-b</b>: general English: loss 3.000 -&gt; 3.300 (+10.0%): over 5%, forgetting</li>' in page
    del data["forgetting"]  # a compare.json written before the check: no section, no error
    assert "Forgetting check" not in compare_html.render(data, EVENTS)


def test_loss_svg_without_events_says_so():
    assert "No loss was logged" in compare_html.loss_svg([])


def test_pick_prompts_spreads_over_the_split():
    records = [{"id": i} for i in range(10)]
    assert [r["id"] for r in pick_prompts(records, 3)] == [0, 3, 6]
    assert len(pick_prompts(records, 50)) == 10


@pytest.mark.slow
def test_compare_command_writes_the_page_and_the_reading(tmp_path_factory, tiny_model, tmp_path):
    from trained_run import trained_run

    run = trained_run(tmp_path_factory, tiny_model)
    out = tmp_path / "compare.html"
    result = subprocess.run(
        stylelora_command("compare", run.name, "-w", str(run.path.parent.parent), "-o", str(out),
                          "--prompts", "2", "--samples", "2", "--max-new-tokens", "12", "--seed", "5"),
        capture_output=True, text=True, timeout=300, env=cli_env(),
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"is (closer to|further from) the author than base by \d+%|equally close|not enough text", result.stdout)
    assert "held-out loss: base" in result.stdout and f"wrote {out}" in result.stdout
    assert re.search(r"general English: loss \d\.\d{3} -> \d\.\d{3} \([+-]\d+\.\d%\)", result.stdout)
    data = json.loads((run.path / "compare.json").read_text())
    assert data["variants"] == ["base", run.name] and len(data["prompts"]) == 2
    assert [s["seed"] for s in data["prompts"][0]["samples"]["base"]] == [5, 6]
    assert data["eval_loss"][run.name]["eval_loss"] < data["eval_loss"]["base"]["eval_loss"]
    general = data["general_loss"]
    assert general["base"]["tokens"] > 1000 and general["base"]["eval_loss"] != data["eval_loss"]["base"]["eval_loss"]
    side = data["forgetting"]["variants"][run.name]
    assert side["change"] == pytest.approx(general[run.name]["eval_loss"] / general["base"]["eval_loss"] - 1)
    assert data["forgetting"]["source"] == "built-in general English sample"
    page = out.read_text()
    assert "<h2>Forgetting check</h2>" in page
    assert "<script" not in page.lower()
    first = data["prompts"][0]["samples"][run.name][0]["text"]
    assert compare_html.esc(first) in page
    assert "<polyline" in page  # the run's own loss curve

    # Real model output with markup in it goes through the same escaping.
    data["prompts"][0]["samples"][run.name][0]["text"] = EVIL
    page = compare_html.render(data, run.events())
    assert "<script" not in page.lower() and "&lt;script&gt;" in page


@pytest.mark.slow
def test_compare_takes_several_runs_side_by_side(tmp_path_factory, tiny_model, tmp_path):
    """base | A | B from one model in memory: every side sampled, scored and on the page; each run gets its compare.json."""
    import shutil

    from trained_run import trained_run

    run = trained_run(tmp_path_factory, tiny_model)
    workspace = tmp_path / "ws"
    shutil.copytree(run.path.parent.parent / "corpus", workspace / "corpus")
    for name in ("run-a", "run-b"):
        shutil.copytree(run.path, workspace / "runs" / name, ignore=shutil.ignore_patterns("compare.*", "checkpoints"))
    out = tmp_path / "compare.html"
    result = subprocess.run(
        stylelora_command("compare", "run-a", "run-b", "-w", str(workspace), "-o", str(out), "--prompts", "1",
                          "--samples", "1", "--max-new-tokens", "8"),
        capture_output=True, text=True, timeout=300, env=cli_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "loading the model (once, with the 2 adapters beside it)" in result.stderr
    for name in ("run-a", "run-b"):
        assert re.search(rf"^{name}: held-out loss: base \d\.\d{{3}}, adapted \d\.\d{{3}}$", result.stdout, re.M)
        assert re.search(rf"^{name}: general English: loss ", result.stdout, re.M)
        saved = json.loads((workspace / "runs" / name / "compare.json").read_text())
        assert saved["variants"] == ["base", name]  # each run's own file: the base against that run
    page = out.read_text()
    assert '--cols: 3' in page and "<th>run-a</th>" in page and "<th>run-b</th>" in page
    twice = subprocess.run(stylelora_command("compare", "run-a", "run-a", "-w", str(workspace)), capture_output=True,
                           text=True, timeout=60, env=cli_env())
    assert twice.returncode == 2 and "named twice" in twice.stderr


def test_compare_of_a_missing_run_fails_clearly(tmp_path):
    (tmp_path / "runs").mkdir()
    result = subprocess.run(stylelora_command("compare", "nope", "-w", str(tmp_path)), capture_output=True, text=True,
                            timeout=60, env=cli_env())
    assert result.returncode == 2 and "no run 'nope'" in result.stderr
