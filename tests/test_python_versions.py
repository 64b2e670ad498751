"""pyproject claims Python 3.10: the app, `prepare` and `config` run under the oldest claimed Python.

The UI process needs only the light dependencies, so a fresh 3.10 virtual
environment gets those (read from pyproject, minus the training stack) and our
package, then runs the commands a user runs first. The training stack itself
(torch, Unsloth) is tested under the suite's own Python.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import clean_source_copy

REPO = Path(__file__).resolve().parents[1]
# Only the trainer and generation subprocesses import these.
TRAINING_STACK = {"unsloth", "torch", "transformers", "trl", "peft", "datasets", "bitsandbytes", "accelerate",
                  "safetensors", "gguf", "huggingface-hub", "huggingface_hub"}


def read_pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def oldest_claimed_python() -> str:
    claim = read_pyproject()["project"]["requires-python"]
    found = re.search(r">=\s*3\.(\d+)", claim)
    assert found, claim
    return f"3.{found.group(1)}"


def find_python(version: str) -> str | None:
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(int(p) for p in version.split("."))):
            return candidate
    return None


def light_requirements() -> list[str]:
    deps = read_pyproject()["project"]["dependencies"]
    return [dep for dep in deps if re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower() not in TRAINING_STACK]


@pytest.fixture(scope="module")
def old_python_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    version = oldest_claimed_python()
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed on this machine")
    venv = tmp_path_factory.mktemp(f"py{version}") / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    install = subprocess.run([*pip, *light_requirements()], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    source = clean_source_copy(venv.parent / "source")
    install = subprocess.run([*pip, "--no-deps", str(source)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    return venv


def run(venv: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "stylelora-tui"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_light_requirements_leave_out_only_the_training_stack() -> None:
    names = {re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower() for dep in light_requirements()}
    assert {"textual", "pyyaml", "platformdirs"} <= names
    assert not names & {"torch", "unsloth", "transformers"}


def test_app_prepare_and_config_run_under_the_oldest_claimed_python(old_python_env: Path, tmp_path: Path) -> None:
    venv = old_python_env
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "STYLELORA_CONFIG_DIR": str(tmp_path / "config"), "STYLELORA_DATA_DIR": str(tmp_path / "data"),
           "STYLELORA_CACHE_DIR": str(tmp_path / "cache")}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.toml").write_text('theme = "stylelora-light"\n')
    books = tmp_path / "books"
    books.mkdir()
    (books / "a.txt").write_text(("The lamp burned low over the grey harbour, and you counted the ships. " * 30 + "\n\n") * 6)
    workspace = tmp_path / "ws"

    version = run(venv, "--version", cwd=tmp_path, env=env)
    assert version.returncode == 0 and "stylelora-tui" in version.stdout, version.stderr

    prepared = run(venv, "prepare", str(books), "-o", str(workspace / "corpus"), cwd=tmp_path, env=env)
    assert prepared.returncode == 0, prepared.stderr
    assert (workspace / "corpus" / "train.jsonl").stat().st_size > 0

    made = run(venv, "config", "new", "lab", "-w", str(workspace), cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    checked = run(venv, "config", "check", str(workspace / "configs" / "lab.yaml"), "-w", str(workspace),
                  cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The app itself: start-up reads settings.toml (tomllib is 3.11+), then every section opens.
    script = textwrap.dedent(f"""
        import asyncio, sys
        from stylelora_tui.screens.app import make_app

        async def main():
            app = make_app({str(workspace)!r})
            async with app.run_test(size=(80, 24)) as pilot:
                for key in "12345":
                    await pilot.press(key)
                    await pilot.pause()
                await app.workers.wait_for_complete()
                print("theme", app.theme, "sections ok")

        asyncio.run(main())
        print(sys.version_info[:2])
    """)
    app = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=300)
    assert app.returncode == 0, app.stderr[-3000:]
    assert "theme stylelora-light sections ok" in app.stdout
    major, minor = (int(part) for part in oldest_claimed_python().split("."))
    assert app.stdout.strip().endswith(str((major, minor)))
