"""llama.cpp's GGUF converters, pinned, installed once and run in a subprocess.

``convert_hf_to_gguf.py``, ``convert_lora_to_gguf.py``, their ``conversion``
package and the ``gguf-py`` they were written with come from the source
distribution of ``llama-cpp-python`` (pinned by version and SHA-256 below).
Only those Python files are extracted; nothing is compiled. They live in the
environment (``PREFIX/share/stylelora-tui/``), so an export never downloads.

The vendored ``gguf`` package is put first on the converter subprocess's
``sys.path`` only: the ``gguf`` package installed beside transformers (which
reads the demo's GGUF file) is left as it is.

``python -m stylelora_tui.gguf_converters install [--sdist FILE]`` installs
them (``scripts/setup`` does), ``check`` says where they are, and ``run
SCRIPT ARGS...`` is how an export calls them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

LLAMA_CPP_PYTHON = "llama-cpp-python"
VERSION = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")
#: What is kept of the sdist, under its vendor/llama.cpp/ folder.
KEPT = (*SCRIPTS, "LICENSE", "conversion/", "gguf-py/gguf/", "gguf-py/LICENSE")
STAMP = "stylelora-converters.json"
INSTALL_COMMAND = "python -m stylelora_tui.gguf_converters install"


class ConvertersMissing(RuntimeError):
    """The converters are not installed here; the message says how to install them."""


def converters_dir() -> Path:
    """Where the converters are (or go): ``$STYLELORA_GGUF_CONVERTERS``, else inside this environment."""
    override = os.environ.get("STYLELORA_GGUF_CONVERTERS")
    if override:
        return Path(override).expanduser()
    return Path(sys.prefix) / "share" / "stylelora-tui" / f"llama.cpp-converters-{VERSION}"


def find_converters() -> Path:
    folder = converters_dir()
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = None
    if not stamp or stamp.get("sha256") != SDIST_SHA256 or not all((folder / s).is_file() for s in SCRIPTS):
        raise ConvertersMissing(
            f"the GGUF converters are not installed in {folder}: run `{INSTALL_COMMAND}` once (it downloads "
            f"{LLAMA_CPP_PYTHON} {VERSION}'s source from the package index, checks its SHA-256 and keeps only "
            "llama.cpp's Python converters), or `pip install 'stylelora-tui[gguf]'` then that command"
        )
    return folder


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(into: Path) -> Path:
    import subprocess

    requirement = into / "requirement.txt"
    requirement.write_text(f"{LLAMA_CPP_PYTHON}=={VERSION} --hash=sha256:{SDIST_SHA256}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                           "--require-hashes", "-r", str(requirement), "-d", str(into)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    found = sorted(into.glob("*.tar.gz"))
    if done.returncode != 0 or not found:
        raise ConvertersMissing(f"pip could not download {LLAMA_CPP_PYTHON}=={VERSION}: "
                                + (done.stderr.strip().splitlines() or ["no sdist"])[-1])
    return found[0]


def _extract(sdist: Path, target: Path) -> None:
    """Regular files under vendor/llama.cpp/ that KEPT names, nothing else (no links, no paths out)."""
    import tarfile

    prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive:
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            inner = member.name[len(prefix):]
            if ".." in Path(inner).parts or not any(inner == k or (k.endswith("/") and inner.startswith(k)) for k in KEPT):
                continue
            destination = target / inner
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.extractfile(member) as source, open(destination, "wb") as out:  # type: ignore[union-attr]
                shutil.copyfileobj(source, out)


def install(sdist: Path | None = None, target: Path | None = None) -> Path:
    """Download (or take) the pinned sdist, check its SHA-256, keep the converters; return their folder."""
    import tempfile

    target = target or converters_dir()
    with tempfile.TemporaryDirectory(prefix="stylelora-sdist-") as tmp:
        sdist = Path(sdist) if sdist else _download(Path(tmp))
        digest = _sha256(sdist)
        if digest != SDIST_SHA256:
            raise ConvertersMissing(f"{sdist} has SHA-256 {digest}, not the pinned {SDIST_SHA256} "
                                    f"of {LLAMA_CPP_PYTHON} {VERSION}: refusing it")
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        _extract(sdist, partial)
        missing = [s for s in SCRIPTS if not (partial / s).is_file()]
        if missing:
            shutil.rmtree(partial, ignore_errors=True)
            raise ConvertersMissing(f"{sdist} lacks {', '.join(missing)}")
        (partial / STAMP).write_text(json.dumps({"package": LLAMA_CPP_PYTHON, "version": VERSION, "sha256": SDIST_SHA256}),
                                     encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def command(script: str, *args: str) -> list[str]:
    """The command line that runs one converter script through ``_run`` below."""
    return [sys.executable, "-m", "stylelora_tui.gguf_converters", "run", script, *args]


# --------------------------------------------------------------------------- inside the converter subprocess


def _known_pre_tokenizer(model_dir: Path) -> str | None:
    """The llama.cpp pre-tokenizer a tokenizer.json's own settings name, when they are GPT-2's byte-level split.

    The converter guesses a pre-tokenizer by hashing how the tokenizer splits a
    test text. A tokenizer whose settings are ByteLevel with GPT-2's regex and
    no normaliser splits exactly as llama.cpp's ``gpt-2`` does, and the hash can
    miss that both ways: a tokenizer trained anew (the tests' tiny model, a
    user's own) is not recognised at all, and the demo's tokenizer as
    transformers rebuilt it from GGUF (no digit splitting) hashes like
    ``smollm``, which splits "  12" differently from the tokenizer training used.
    """
    try:
        data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pre = data.get("pre_tokenizer") or {}
    normalizer = data.get("normalizer")
    plain = normalizer is None or (normalizer.get("type") == "Sequence" and not normalizer.get("normalizers"))
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and plain:
        return "gpt-2"
    return None


def _run(script: str, args: list[str]) -> int:
    import runpy

    folder = find_converters()
    if script not in SCRIPTS:
        raise SystemExit(f"unknown converter {script!r}: one of {', '.join(SCRIPTS)}")
    # Before anything imports gguf: the vendored gguf-py the converters were written with.
    sys.path[:0] = [str(folder / "gguf-py"), str(folder)]
    from conversion import base  # type: ignore[import-not-found]

    recognise = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):  # type: ignore[no-untyped-def]
        known = _known_pre_tokenizer(Path(self.dir_model))
        if known is None:
            return recognise(self, tokenizer)
        print(f"pre-tokenizer: {known} (tokenizer.json: byte-level with GPT-2's split)", file=sys.stderr)
        return known

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = [str(folder / script), *args]
    try:
        runpy.run_path(str(folder / script), run_name="__main__")
    except OSError as exc:  # a full disk, a folder gone: one line, not a traceback
        print(f"converter error: {exc.strerror or exc} ({getattr(exc, 'filename', '') or script})", file=sys.stderr)
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"] and len(argv) >= 2:
        try:
            return _run(argv[1], argv[2:])
        except ConvertersMissing as exc:
            print(f"stylelora-tui: {exc}", file=sys.stderr)
            return 2
    if argv[:1] == ["check"]:
        try:
            print(find_converters())
        except ConvertersMissing as exc:
            print(f"stylelora-tui: {exc}", file=sys.stderr)
            return 1
        return 0
    if argv[:1] == ["install"]:
        sdist = Path(argv[argv.index("--sdist") + 1]) if "--sdist" in argv else None
        try:
            folder = install(sdist)
        except (ConvertersMissing, OSError) as exc:
            print(f"stylelora-tui: {exc}", file=sys.stderr)
            return 2
        print(f"GGUF converters of {LLAMA_CPP_PYTHON} {VERSION} installed in {folder}")
        return 0
    print(f"usage: {INSTALL_COMMAND} [--sdist FILE] | python -m stylelora_tui.gguf_converters check|run SCRIPT ARGS...",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
