"""The installed distribution: one import namespace, the UI and data inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import clean_source_copy


def test_wheel_holds_only_the_stylelora_tui_namespace(tmp_path: Path):
    source = clean_source_copy(tmp_path / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(tmp_path.glob("stylelora_tui-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"stylelora_tui", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    # screens/ and themes/ ship inside the namespace, with their stylesheets.
    assert "stylelora_tui/screens/app.py" in names and "stylelora_tui/themes/__init__.py" in names
    assert any(name.startswith("stylelora_tui/screens/") and name.endswith(".tcss") for name in names)
    assert len([n for n in names if n.startswith("stylelora_tui/data/demo_corpus/") and n.endswith(".md")]) >= 30
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "stylelora-tui = stylelora_tui.cli:main" in entry_points
    # Every core subpackage ships (a package left out of pyproject's list would not).
    for package in ("cli", "corpus", "runs", "training", "generation", "compare"):
        assert f"stylelora_tui/{package}/__init__.py" in names, package
    # Exactly the repository's modules: nothing stale from an earlier build.
    repo = Path(__file__).resolve().parent.parent
    expected = {f"stylelora_tui/{p.relative_to(repo / 'stylelora_tui').as_posix()}" for p in (repo / "stylelora_tui").rglob("*.py")}
    expected |= {f"stylelora_tui/screens/{p.relative_to(repo / 'screens').as_posix()}" for p in (repo / "screens").rglob("*.py")}
    expected |= {f"stylelora_tui/themes/{p.relative_to(repo / 'themes').as_posix()}" for p in (repo / "themes").rglob("*.py")}
    assert {name for name in names if name.endswith(".py")} == expected
