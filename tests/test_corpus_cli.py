"""`stylelora-tui prepare`: exit codes, messages and files, in-process and as a real command."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from stylelora_tui.cli.main import main

REPO = Path(__file__).resolve().parent.parent


def _prose(rng: random.Random, words: int) -> str:
    vocab = ["".join(rng.choices("abcdefghijklmnoprstuvwy", k=rng.randint(2, 9))) for _ in range(500)]
    out = []
    for start in range(0, words, 10):
        chunk = rng.choices(vocab, k=min(10, words - start))
        out.append(chunk[0].capitalize() + " " + " ".join(chunk[1:]) + ".")
    return " ".join(out)


@pytest.fixture
def book(tmp_path: Path) -> Path:
    rng = random.Random(5)
    path = tmp_path / "book.txt"
    path.write_text("\n\n".join(_prose(rng, rng.randint(40, 120)) for _ in range(40)), encoding="utf-8")
    return path


def test_clean_input_exits_0(tmp_path, book, capsys):
    out = tmp_path / "corpus"
    assert main(["prepare", str(book), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "Passages:" in captured.out and f"Wrote {out}" in captured.out
    report = json.loads((out / "report.json").read_text())
    train = (out / "train.jsonl").read_text().splitlines()
    assert len(train) == report["train_records"] > 0
    assert (out / "style.jsonl").exists() and (out / "eval.jsonl").exists()


def test_rejects_exit_1_and_name_file_and_line(tmp_path, book, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine but short"}\n{oops\n{"text": 3}\n', encoding="utf-8")
    out = tmp_path / "corpus"
    assert main(["prepare", str(book), str(bad), str(tmp_path / "missing"), "-o", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{bad}:1: text has no passage of at least 100 words (3 usable words)" in err
    assert any(line.startswith(f"{bad}:2: invalid JSON") for line in err)
    assert f'{bad}:3: "text" is int, not a string' in err
    assert f"{tmp_path / 'missing'}: no such file or folder" in err
    assert (out / "train.jsonl").exists()


def test_nothing_usable_exits_2_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "corpus"
    assert main(["prepare", str(empty), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"{empty}: empty folder" in captured.err and "nothing written" in captured.err
    assert not out.exists()


def test_bad_arguments_exit_2(tmp_path, book, capsys):
    out = tmp_path / "corpus"
    assert main(["prepare", str(book), "-o", str(out), "--min-words", "300", "--max-words", "200"]) == 2
    assert "max_words (200) is below min_words (300)" in capsys.readouterr().err
    assert main(["prepare", str(book), "-o", str(out), "--tokenizer", str(tmp_path / "no-such-model")]) == 2
    assert "tokenizer not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: -o is required
        main(["prepare", str(book)])
    assert exit_info.value.code == 2
    assert not out.exists()


def test_options_reach_the_records(tmp_path, book):
    out = tmp_path / "corpus"
    args = ["prepare", str(book), "-o", str(out), "--input-words", "20", "--output-words", "60",
            "--min-words", "80", "--max-words", "150", "--instruction", "Write on:", "--eval-fraction", "0.5",
            "--seed", "1"]
    assert main(args) == 0
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    held = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert abs(len(train) - len(held)) <= 1
    for record in train + held:
        assert record["instruction"] == "Write on:"
        assert len(record["input"].split()) == 20 and 30 <= len(record["output"].split()) <= 60
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["seed"] == 1 and report["words"]["max"] <= 150


def test_console_command_in_a_subprocess(tmp_path, book):
    out = tmp_path / "corpus"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "stylelora_tui.cli", "prepare", str(book), "-o", str(out)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Records:" in result.stdout
    assert "\r" not in result.stdout + result.stderr  # no progress line when not on a terminal
    assert (out / "report.json").exists()
