"""``export RUN --gguf``: GGUF files that llama.cpp (xllamacpp) loads and that decode like PEFT's merged model.

The tiny run is exported (f32, so the comparison is exact) and loaded twice
with llama.cpp: the merged GGUF, and the base GGUF with the GGUF LoRA. Greedy
tokens must equal the PEFT model's for the run's own prompt. An rsLoRA copy
of the run proves the alpha/sqrt(r) scale is baked in; the demo model's
tokenizer (rebuilt from GGUF by transformers) must load and tokenize alike.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command
from stylelora_tui import export_gguf, gguf_converters
from stylelora_tui.export import ExportError
from stylelora_tui.prompting import read_jsonl, render_prompt
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace
from trained_run import trained_run

pytestmark = pytest.mark.slow
xlc = pytest.importorskip("xllamacpp", reason="the [gguf] extra (xllamacpp) is installed by scripts/setup")
NEW_TOKENS = 16
#: Two logits closer than this are a tie: llama.cpp and torch sum in different orders (~1e-4 apart at float32).
TIE = 5e-3


def export_cli(run: Run, *args: str, env: dict[str, str] | None = None, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(stylelora_command("export", run.name, "-w", str(run.path.parent.parent), "--gguf", *args),
                          capture_output=True, text=True, timeout=600, env=env or cli_env(), stdin=subprocess.DEVNULL,
                          **popen)


class Llama:
    """A llama.cpp server (xllamacpp) on the loopback address, asked for greedy tokens."""

    def __init__(self, model: Path, lora: Path | None = None) -> None:
        params = xlc.CommonParams()
        params.model.path = str(model)
        params.n_ctx = 512
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2
        params.warmup = False
        if lora is not None:
            params.lora_adapters = [xlc.CommonAdapterLoraInfo(str(lora), 1.0)]
        self.server = xlc.Server(params)

    def post(self, path: str, body: dict) -> dict:
        import urllib.request

        request = urllib.request.Request(self.server.listening_address + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())

    def greedy(self, prompt_ids: list[int], n: int = NEW_TOKENS) -> list[int]:
        answer = self.post("/completion", {"prompt": prompt_ids, "n_predict": n, "temperature": 0.0, "top_k": 1,
                                           "return_tokens": True, "ignore_eos": True, "cache_prompt": False})
        return answer["tokens"]

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        return self.post("/tokenize", {"content": text, "add_special": add_special, "parse_special": True})["tokens"]


class PeftMerged:
    """PEFT's merged model (float32), the reference the GGUF files are held to."""

    def __init__(self, base: str, adapter: Path) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(adapter))
        self.model = model.merge_and_unload().eval()

    def greedy(self, prompt_ids: list[int], n: int = NEW_TOKENS) -> list[int]:
        import torch

        with torch.no_grad():
            out = self.model.generate(torch.tensor([prompt_ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                      num_beams=1, repetition_penalty=1.0, pad_token_id=0)
        return out[0, len(prompt_ids):].tolist()

    def gaps(self, prompt_ids: list[int], tokens: list[int]) -> list[float]:
        """For each token llama.cpp chose, how far below PEFT's best logit it is (0: PEFT's greedy choice too)."""
        import torch

        with torch.no_grad():
            logits = self.model(torch.tensor([prompt_ids + tokens])).logits[0, len(prompt_ids) - 1:-1]
        return [float(row.max() - row[token]) for row, token in zip(logits, tokens)]

    def assert_greedy(self, prompt_ids: list[int], tokens: list[int]) -> None:
        """llama.cpp's greedy tokens are PEFT's: each one PEFT's best, up to float rounding between near-equal logits."""
        assert len(tokens) == NEW_TOKENS
        gaps = self.gaps(prompt_ids, tokens)
        assert max(gaps) < TIE, (tokens, gaps)
        if tokens != self.greedy(prompt_ids):  # a near-tie went the other way: only where PEFT itself hesitates
            assert sum(gap > 0 for gap in gaps) <= 2, (tokens, gaps)


def run_prompt(run: Run) -> tuple[str, list[int]]:
    """The run's first held-out record as training renders it, and its token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run.adapter_dir)
    record = read_jsonl(Path(run.config()["data"]["corpus"]) / "eval.jsonl")[0]
    text = render_prompt(tokenizer, record, run.config()["data"].get("format") or "instruction")
    return text, tokenizer(text, add_special_tokens=False)["input_ids"]


def copy_run(run: Run, name: str, **adapter_config) -> Run:
    """Another run of the same workspace: the trained run's folder with its adapter config changed."""
    target = run.path.parent / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run.path, target, ignore=shutil.ignore_patterns("gguf", "gguf.partial", "merged", ".lock"))
    config_path = target / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config.update(adapter_config)
    config_path.write_text(json.dumps(config))
    return Workspace(run.path.parent.parent).find_run(name)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model) -> Run:
    return trained_run(tmp_path_factory, tiny_model)


@pytest.fixture(scope="module")
def exported(run):
    result = export_cli(run, "--quant", "f32")
    assert result.returncode == 0, result.stderr
    return result


def test_cli_writes_merged_base_adapter_and_modelfiles(exported, run, tiny_model):
    out = run.path / "gguf"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{run.name}-merged-f32.gguf", f"{tiny_model.name}-f32.gguf", f"{run.name}-lora-f32.gguf",
                            "Modelfile", "Modelfile.merged", "README.md"])
    assert not (run.path / "gguf.partial").exists()
    assert f"merged GGUF: {out / f'{run.name}-merged-f32.gguf'}" in exported.stdout
    assert "max abs difference" in exported.stdout
    assert "converting the adapter" in exported.stderr  # progress lines for the app


def test_merged_gguf_and_base_plus_lora_decode_like_peft(exported, run, tiny_model):
    _, prompt_ids = run_prompt(run)
    peft = PeftMerged(str(tiny_model), run.adapter_dir)
    out = run.path / "gguf"
    peft.assert_greedy(prompt_ids, Llama(out / f"{run.name}-merged-f32.gguf").greedy(prompt_ids))
    peft.assert_greedy(prompt_ids, Llama(out / f"{tiny_model.name}-f32.gguf", out / f"{run.name}-lora-f32.gguf").greedy(prompt_ids))
    base_only = Llama(out / f"{tiny_model.name}-f32.gguf").greedy(prompt_ids)
    assert max(peft.gaps(prompt_ids, base_only)) > 0.1  # without the adapter it fails: the check above means something


def test_modelfile_template_tokenizes_to_the_training_prompt(exported, run, tiny_model):
    out = run.path / "gguf"
    text = (out / "Modelfile").read_text()
    lines = text.splitlines()
    assert lines[0] == f"FROM ./{tiny_model.name}-f32.gguf" and lines[1] == f"ADAPTER ./{run.name}-lora-f32.gguf"
    assert 'PARAMETER stop "<|im_end|>"' in lines  # the tokenizer's end of turn, which training appended
    assert (out / "Modelfile.merged").read_text().startswith(f"FROM ./{run.name}-merged-f32.gguf\nTEMPLATE")
    template = text.split('TEMPLATE """')[1].split('"""')[0]
    record = read_jsonl(Path(run.config()["data"]["corpus"]) / "eval.jsonl")[0]
    assert template.startswith("<|im_start|>user\nContinue in the author's style:\n\n{{ .Prompt }}<|im_end|>")
    typed = template.replace("{{ .Prompt }}", record["input"].strip())
    _, prompt_ids = run_prompt(run)
    assert Llama(out / f"{run.name}-merged-f32.gguf").tokenize(typed, add_special=True) == prompt_ids


def test_rslora_scale_is_baked_into_the_gguf_adapter(exported, run, tiny_model):
    rs = copy_run(run, "tiny-rslora", use_rslora=True)
    _, prompt_ids = run_prompt(rs)
    peft = PeftMerged(str(tiny_model), rs.adapter_dir)
    plain_scale = PeftMerged(str(tiny_model), run.adapter_dir).greedy(prompt_ids)
    assert max(peft.gaps(prompt_ids, plain_scale)) > 0.1  # alpha/r instead of alpha/sqrt(r) would fail the checks below
    result = export_cli(rs, "--quant", "f32")
    assert result.returncode == 0, result.stderr
    assert "rsLoRA's alpha/sqrt(r) baked into the B matrices" in result.stderr
    out = rs.path / "gguf"
    lora = Llama(out / f"{tiny_model.name}-f32.gguf", out / f"{rs.name}-lora-f32.gguf")
    peft.assert_greedy(prompt_ids, lora.greedy(prompt_ids))
    peft.assert_greedy(prompt_ids, Llama(out / f"{rs.name}-merged-f32.gguf").greedy(prompt_ids))


# --------------------------------------------------------------------------- the demo model


@pytest.fixture(scope="module")
def demo_run(run, tmp_path_factory) -> Run:
    """A run on the demo base (SmolLM2, raw_text): the tiny run's folder with a PEFT adapter made on the demo model.

    Training the demo takes minutes on a CPU; the export reads only the run's
    config, its adapter folder and stylelora.json, so an adapter made here with
    PEFT (B drawn at random, so it changes the output) stands for a trained one.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from stylelora_tui import config as config_mod
    from stylelora_tui.demo import ensure_demo_workspace
    from stylelora_tui.training.models import DemoUnavailable, ensure_demo_model

    try:
        base = ensure_demo_model()
    except DemoUnavailable as exc:
        pytest.skip(str(exc))
    demo = copy_run(run, "demo-style")
    corpus = ensure_demo_workspace(tmp_path_factory.mktemp("demo-ws")) / "corpus"
    cfg = run.config()
    cfg["model"]["name"] = "demo"
    cfg["data"].update(format="raw_text", corpus=str(corpus))
    config_mod.save(demo.config_path, cfg)
    shutil.rmtree(demo.adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                                                  task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.05)
    peft_model.save_pretrained(demo.adapter_dir)
    AutoTokenizer.from_pretrained(base).save_pretrained(demo.adapter_dir)
    meta = {"base_model": "demo", "base_model_path": str(base), "backend": "peft", "config": cfg}
    (demo.adapter_dir / "stylelora.json").write_text(json.dumps(meta))
    return demo


def gguf_field(path: Path, key: str):
    from gguf import GGUFReader

    field = GGUFReader(str(path)).fields[key]
    value = field.parts[field.data[0]]
    return bytes(value).decode() if field.types[0].name == "STRING" else value.tolist()


def test_demo_tokenizer_would_become_the_wrong_vocab_without_the_fix(demo_run, tmp_path):
    """The trap: as transformers rebuilt it from GGUF, the converter writes a SentencePiece ('llama') vocabulary."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo_run.adapter_dir / name if name != "config.json" else
                    Path(json.loads((demo_run.adapter_dir / "stylelora.json").read_text())["base_model_path"]) / name, raw / name)
    fixed = tmp_path / "fixed"
    shutil.copytree(raw, fixed)
    assert export_gguf.fix_tokenizer(fixed) and not export_gguf.fix_tokenizer(fixed)  # once, then nothing to do
    kinds = {}
    for folder in (raw, fixed):
        out = tmp_path / f"{folder.name}.gguf"
        done = subprocess.run(gguf_converters.command("convert_hf_to_gguf.py", str(folder), "--vocab-only", "--outfile",
                                                      str(out)), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        kinds[folder.name] = gguf_field(out, "tokenizer.ggml.model")
    assert kinds == {"raw": "llama", "fixed": "gpt2"}


def test_demo_export_round_trips_the_tokenizer_and_decodes_like_peft(demo_run):
    from transformers import AutoTokenizer

    result = export_cli(demo_run, "--quant", "f32")
    assert result.returncode == 0, result.stderr
    assert "tokenizer: plain byte-level decoder written for llama.cpp" in result.stderr
    out = demo_run.path / "gguf"
    merged, base = out / "demo-style-merged-f32.gguf", out / "SmolLM2-135M-Instruct-f32.gguf"
    assert gguf_field(merged, "tokenizer.ggml.model") == "gpt2"
    tokenizer = AutoTokenizer.from_pretrained(demo_run.adapter_dir)
    llama = Llama(merged)
    corpus = read_jsonl(Path(demo_run.config()["data"]["corpus"]) / "train.jsonl")
    for text in [export_gguf.ROUND_TRIP_TEXT, corpus[0]["output"], corpus[1]["input"], "  12345 1/2 x² ½ — ok\n\n"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert llama.tokenize(text, add_special=False) == ids, text
        assert llama.post("/detokenize", {"tokens": ids})["content"] == tokenizer.decode(ids), text
    text, prompt_ids = run_prompt(demo_run)  # raw_text: the bare opening words
    assert Llama(merged).tokenize(text, add_special=True) == prompt_ids  # no BOS added that training did not see
    peft = PeftMerged(json.loads((demo_run.adapter_dir / "stylelora.json").read_text())["base_model_path"],
                      demo_run.adapter_dir)
    peft.assert_greedy(prompt_ids, llama.greedy(prompt_ids))
    peft.assert_greedy(prompt_ids, Llama(base, out / "demo-style-lora-f32.gguf").greedy(prompt_ids))
    assert max(peft.gaps(prompt_ids, Llama(base).greedy(prompt_ids))) > 0.1
    modelfile = (out / "Modelfile").read_text()
    assert 'TEMPLATE """{{ .Prompt }}"""' in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


# --------------------------------------------------------------------------- what cannot be exported, and failures


def test_without_the_converters_the_export_says_how_to_install_them(run, tmp_path):
    env = cli_env()
    env["STYLELORA_GGUF_CONVERTERS"] = str(tmp_path / "nowhere")
    result = export_cli(run, "-o", str(tmp_path / "out"), env=env)
    assert result.returncode == 2
    assert "the GGUF converters are not installed" in result.stderr
    assert "python -m stylelora_tui.gguf_converters install" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("change", "says"), [
    ({"peft_type": "IA3"}, "it is a IA3 adapter (llama.cpp loads LoRA adapters only"),
    ({"peft_type": "PROMPT_TUNING"}, "prompt tuning and IA3 have no GGUF form"),
    ({"use_dora": True}, "DoRA adapter (use_dora: true), which llama.cpp does not load"),
    ({"modules_to_save": ["lm_head"]}, "saves whole modules"),
])
def test_methods_llama_cpp_cannot_load_are_refused_before_any_work(run, tmp_path, change, says):
    other = copy_run(run, "unexportable", **change)
    result = export_cli(other, "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert "run unexportable cannot be exported to GGUF" in result.stderr and "loading" not in result.stderr
    assert not (tmp_path / "out").exists()


def _small_files(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_failed_write_leaves_no_export_and_keeps_the_previous_one(exported, run, tmp_path):
    out = run.path / "gguf"
    before = sorted(p.name for p in out.iterdir())
    result = export_cli(run, "--quant", "f32", preexec_fn=_small_files(64 * 1024))
    assert result.returncode == 2, result.stderr
    assert "could not write the GGUF export (" in result.stderr and "File too large" in result.stderr
    assert f"{out} is as it was" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == before  # the previous export untouched
    assert not (run.path / "gguf.partial").exists()


def test_a_full_disk_in_the_converter_is_one_clear_line(run, tiny_model):
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    done = subprocess.run(gguf_converters.command("convert_hf_to_gguf.py", str(tiny_model), "--outfile", "/dev/full",
                                                  "--outtype", "f32"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 3
    assert "converter error: No space left on device" in done.stderr and "Traceback" not in done.stderr


def test_a_folder_that_is_not_an_earlier_export_is_never_replaced(run, tmp_path):
    for target, says in ((run.path, "holds run tiny-run"), (run.path.parent, "holds run tiny-run"),
                         (tmp_path, "holds other files; choose an empty folder")):
        (tmp_path / "mine.txt").write_text("keep me")
        with pytest.raises(ExportError, match=says):
            export_gguf.write_gguf_export(run, target)
    assert (tmp_path / "mine.txt").read_text() == "keep me" and (run.adapter_dir / "adapter_config.json").exists()


def test_gguf_does_not_go_with_merge(run):
    result = export_cli(run, "--merge")
    assert result.returncode == 2 and "--gguf already writes a merged model" in result.stderr


# --------------------------------------------------------------------------- pieces


def test_lora_b_factor_bakes_rslora_and_alpha_pattern():
    plain = {"lora_alpha": 16, "r": 8}
    assert export_gguf.lora_b_factor(plain, "model.layers.0.self_attn.q_proj", 8) == 1.0
    rs = {"lora_alpha": 16, "r": 16, "use_rslora": True}
    assert export_gguf.lora_b_factor(rs, "model.layers.0.self_attn.q_proj", 16) == pytest.approx(4.0)  # sqrt(16)
    pattern = {"lora_alpha": 16, "r": 8, "alpha_pattern": {"v_proj": 32}}
    assert export_gguf.lora_b_factor(pattern, "model.layers.1.self_attn.v_proj", 8) == pytest.approx(2.0)
    assert export_gguf.lora_b_factor(pattern, "model.layers.1.self_attn.q_proj", 8) == 1.0


def test_install_refuses_an_sdist_whose_sha256_differs(tmp_path):
    import tarfile

    fake = tmp_path / f"llama_cpp_python-{gguf_converters.VERSION}.tar.gz"
    with tarfile.open(fake, "w:gz") as archive:
        archive.add(__file__, arcname=f"llama_cpp_python-{gguf_converters.VERSION}/vendor/llama.cpp/convert_hf_to_gguf.py")
    with pytest.raises(gguf_converters.ConvertersMissing, match="not the pinned"):
        gguf_converters.install(fake, tmp_path / "target")
    assert not (tmp_path / "target").exists() and not (tmp_path / "target.partial").exists()


def test_extract_keeps_only_the_converters(tmp_path):
    import io
    import tarfile

    prefix = f"llama_cpp_python-{gguf_converters.VERSION}/vendor/llama.cpp/"
    sdist = tmp_path / "x.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for name in ("convert_hf_to_gguf.py", "conversion/llama.py", "gguf-py/gguf/__init__.py", "ggml/src/big.c",
                     "conversion/../../../escape.py", "setup.py"):
            data = b"x = 1\n"
            info = tarfile.TarInfo(prefix + name if name != "setup.py" else f"llama_cpp_python-{gguf_converters.VERSION}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    gguf_converters._extract(sdist, tmp_path / "out")
    kept = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert kept == ["conversion/llama.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    assert not (tmp_path / "escape.py").exists()


def test_export_error_for_an_unknown_quant(run):
    with pytest.raises(ExportError, match="k-quants need llama.cpp's llama-quantize"):
        export_gguf.write_gguf_export(run, quant="q4_k_m")


# --------------------------------------------------------------------------- the app's export dialog


def dialog_app():
    from textual.app import App

    from stylelora_tui.screens.compare_dialogs import ExportDialog
    from stylelora_tui.themes import APP_CSS

    class DialogApp(App):
        CSS_PATH = APP_CSS
        result = "open"

        def on_mount(self) -> None:
            self.push_screen(ExportDialog("/tmp/nowhere/compare.html", "tiny-run"), self.closed)

        def closed(self, request) -> None:
            self.result = request

    return DialogApp()


@pytest.mark.anyio
async def test_dialog_offers_gguf_and_its_type_from_the_keyboard_at_80x24():
    from textual.widgets import Select

    from stylelora_tui.compare.publish import ExportRequest

    app = dialog_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("tab", "tab", "tab")  # path -> card -> merge -> GGUF
        assert app.focused.id == "export-gguf"
        await pilot.press("space", "tab")
        assert app.focused.id == "export-quant"
        region = app.focused.region
        assert region.right <= 80 and region.bottom <= 24  # on screen at 80x24
        await pilot.press("enter", "down", "enter")  # open the list, next type, choose it
        await pilot.pause()
        assert app.screen.query_one("#export-quant", Select).value == "q8_0"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.result == ExportRequest(path="/tmp/nowhere/compare.html", card=False, merge=False, push="", gguf=True,
                                       quant="q8_0")


@pytest.mark.anyio
async def test_dialog_refuses_merge_and_gguf_together():
    from conftest import recorded_notifications
    from stylelora_tui.screens.compare_dialogs import ExportDialog

    app = dialog_app()
    async with app.run_test(size=(80, 24)) as pilot:
        seen = recorded_notifications(app)
        await pilot.pause()
        await pilot.press("tab", "tab", "space", "tab", "space", "ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog) and app.result == "open"
        assert any("tick merge or GGUF, not both" in message for _, message, _ in seen)


def test_compare_export_runs_the_gguf_export_with_progress(run, tmp_path):
    """What the app's worker calls: compare.html, then `stylelora-tui export RUN --gguf --quant q8_0`, line by line."""
    from stylelora_tui.compare.publish import ExportRequest, export_compare

    run = copy_run(run, "tiny-app")  # the app's export writes RUN/gguf: another run's, not the one the tests above read
    data = {"run": run.name, "model": "tiny", "device": "cpu", "variants": ["base", run.name], "prompts": [],
            "settings": {}, "style": None}
    lines: list[str] = []
    request = ExportRequest(path=str(tmp_path / "compare.html"), card=False, merge=False, push="", gguf=True, quant="q8_0")
    result = export_compare(request, run, [run], data, lines.append)
    assert result.ok, result.summary
    assert result.summary.startswith(f"$ stylelora-tui export {run.path} --gguf --quant q8_0")
    base = f"{Path(str(run.config()['model']['name'])).name}-q8_0.gguf"
    assert [line for line in lines if line.startswith("converting")] == [
        f"converting the merged model to {run.name}-merged-q8_0.gguf", f"converting the base model to {base}",
        f"converting the adapter to {run.name}-lora-f16.gguf"]  # the adapter stays 16-bit
    out = run.path / "gguf"
    assert f"Ollama: {out / 'Modelfile'}" in result.summary and (tmp_path / "compare.html").exists()
    assert gguf_field(out / base, "general.file_type") == [7]  # llama.cpp's MOSTLY_Q8_0
    _, prompt_ids = run_prompt(run)
    assert len(Llama(out / base, out / f"{run.name}-lora-f16.gguf").greedy(prompt_ids, 4)) == 4
