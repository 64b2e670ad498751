"""The benchmark scripts run, in a reduced form, on the tiny model: they must not rot between measurements."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env, write_corpus

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def test_the_memory_bench_reports_rss_at_the_asked_steps_from_the_trainers_events(tmp_path, tiny_model):
    corpus = write_corpus(tmp_path / "corpus")
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "train_memory.py"), "--model", str(tiny_model), "--corpus", str(corpus),
         "--steps", "6", "--at", "2,4,6", "--variant", "trimmed:", "--variant", "untrimmed:env.STYLELORA_MALLOC_TRIM=0"],
        capture_output=True, text=True, timeout=600, env=cli_env(), cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = {line.split(":")[0].strip(): line for line in out.stdout.splitlines() if "growth after step" in line}
    assert set(lines) == {"trimmed", "untrimmed"}
    for line in lines.values():
        sizes = [float(x) for x in re.findall(r"step \d+: ([\d.]+) GiB", line)]
        assert [int(s) for s in re.findall(r"step (\d+): [\d.]+ GiB", line)] == [2, 4, 6]
        assert all(0.05 < size < 16 for size in sizes)  # a trainer's resident size, in GiB
        assert re.search(r"growth after step 2: [+-]\d+\.\d%", line)
