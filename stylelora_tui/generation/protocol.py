"""What the generation process and its clients say to each other, and the sampling defaults.

Defined once here: the server answers in these shapes, ``GenerationClient``
sends these requests, and the CLI's flags, the app's settings form and the
server read their defaults from ``SAMPLING_DEFAULTS``.

Every line is one JSON object, requests on the process's stdin, replies on its
stdout (nothing else is ever written there: library chatter goes to stderr).

- first line out: ``Ready`` (``{"ready": true, "model", "model_path", "device",
  "dtype", "variants": ["base", RUN...], "runs", "eos_token_ids",
  "pad_token_id", "warnings"}``); a load failure is instead
  ``{"error": "...", "fatal": true}`` and exit 1.
- ``GenerateRequest``: ``{"id", "op": "generate", "prompt": TEXT | "record":
  {...}, "variants", "n", "seed", "temperature", "top_p", "max_new_tokens", "repetition_penalty"}``.
  ``record`` is a corpus record (instruction + input); a typed ``prompt``
  becomes the input of a record with the training data's instruction. The
  prompt is rendered by ``prompting.render_prompt``, the same chat template as
  training. For each variant, all n samples (sample i has seed = seed + i, the same
  seeds for every variant) come from one batched ``generate`` call:
  ``TokenLine``s of the samples interleave as text arrives, then a
  ``DoneLine`` per sample (``stopped``: "eos", "length" or "cancelled"; a
  cancel ends every sample still going). Temperature 0 is greedy. A sample
  depends on its seed alone (each row samples with its own generator,
  ``generation.sampling.SeededSampler``), so it is reproduced with plain
  transformers by ``generate(do_sample=False, logits_processor=
  [SeededSampler([seed], temperature, top_p)])`` on the same rendered prompt
  (for "base": the base model without the adapter).
- ``EvalLossRequest``: ``{"id", "op": "eval_loss", "variants", "limit"?,
  "records"?, "data_format"?, "split"?}``: held-out loss on the run's
  eval.jsonl (or the given records), on the tokens training learns from (the
  continuation; every token for a ``raw_text`` run, or when ``data_format``
  is "raw_text": the forgetting check's general text); one ``EvalLossLine``
  per variant, carrying the request's ``split`` tag when it has one. Plain
  text longer than the run's max_seq_length is scored in windows of that
  length (each window's first token has no context and is not scored).
  The loss is the token-weighted mean NLL.
- ``{"op": "cancel", "id"}``: stops that request (now, or when it is reached).
- ``{"op": "shutdown"}``: cancel everything and exit 0. At the end of stdin the
  requests already sent are answered first, then it exits 0.
- every request ends with ``FinishedLine`` (``{"id", "finished": true,
  "cancelled": bool}``); a bad request gets ``ErrorLine`` (then finished); the
  process never dies of one.
"""

from __future__ import annotations

from typing import Any, Iterable, TypedDict

BASE = "base"  # the variant without any adapter (the same weights, adapters disabled)

#: One place for the sampling defaults. 200 new tokens: a held-out continuation
#: is up to 200 words (``prepare``'s output_words), so shorter samples would cut
#: the comparison short of the author's own length.
#: repetition_penalty: transformers' (CTRL's) penalty on tokens already in the
#: text, 1.0 = none. 1.1, measured on the demo (docs/benchmarks.md, "Compare's
#: decoding"): no sample of either side looped, against 92% of base's and 17% of
#: the adapter's at 1.0, and the adapted samples were no further from the author.
SAMPLING_DEFAULTS: dict[str, Any] = {
    "n": 5, "seed": 0, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 200, "repetition_penalty": 1.1,
}
SAMPLING_KEYS = tuple(SAMPLING_DEFAULTS)
SAMPLING_LIMITS = "need 1 <= n <= 100, max_new_tokens >= 1, temperature >= 0, 0 < top_p <= 1 and 1 <= repetition_penalty <= 2"


class GenerationError(RuntimeError):
    """A problem with a request or a run, with a message for the user."""


def sampling_from(fields: dict[str, Any]) -> dict[str, Any]:
    """The sampling settings of a request (defaults filled in), checked; raises ``GenerationError``."""
    try:
        settings = {key: type(default)(fields.get(key, default)) for key, default in SAMPLING_DEFAULTS.items()}
    except (TypeError, ValueError) as exc:
        raise GenerationError(f"bad sampling setting: {exc}") from None
    if problem := sampling_problem(settings):
        raise GenerationError(problem)
    return settings


def sampling_problem(settings: dict[str, Any]) -> str:
    """What is wrong with these settings (empty when nothing)."""
    s = settings
    if (not 1 <= s["n"] <= 100 or s["max_new_tokens"] < 1 or s["temperature"] < 0 or not 0 < s["top_p"] <= 1
            or not 1 <= s["repetition_penalty"] <= 2):
        return SAMPLING_LIMITS
    return ""


# --------------------------------------------------------------------------- requests


class GenerateRequest(TypedDict, total=False):
    id: str
    op: str  # "generate"
    prompt: str
    record: dict[str, Any]
    variants: list[str]
    n: int
    seed: int
    temperature: float
    top_p: float
    max_new_tokens: int


class EvalLossRequest(TypedDict, total=False):
    id: str
    op: str  # "eval_loss"
    variants: list[str]
    limit: int
    records: list[dict[str, Any]]
    data_format: str  # "instruction" or "raw_text"; default: the runs' own
    split: str  # echoed in every line ("general": the forgetting check)


def generate_fields(record: dict[str, Any], settings: dict[str, Any], variants: list[str]) -> dict[str, Any]:
    """The fields of a ``generate`` request: a typed prompt (no instruction) goes as text, a held-out record whole."""
    typed = not record.get("instruction")
    fields: dict[str, Any] = {"prompt": record["input"]} if typed else {"record": record}
    return {**fields, "variants": variants, **{key: settings[key] for key in SAMPLING_KEYS}}


# --------------------------------------------------------------------------- replies


class Ready(TypedDict, total=False):
    ready: bool
    model: str
    model_path: str
    device: str
    dtype: str
    variants: list[str]
    runs: dict[str, str]
    eos_token_ids: list[int]
    pad_token_id: int
    warnings: list[str]


class TokenLine(TypedDict):
    id: str
    variant: str
    sample: int
    seed: int
    token: str


class DoneLine(TypedDict):
    id: str
    variant: str
    sample: int
    seed: int
    done: bool
    text: str
    tokens: int
    stopped: str


class EvalLossLine(TypedDict):
    id: str
    variant: str
    eval_loss: float | None
    perplexity: float | None
    tokens: int
    records: int
    # and ``split``, the request's tag, when it had one


class ErrorLine(TypedDict):
    id: str | None
    error: str


class FinishedLine(TypedDict):
    id: str | None
    finished: bool
    cancelled: bool


LOSS_FIELDS = ("eval_loss", "perplexity", "tokens")


def losses_by_variant(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``eval_loss`` lines of a request: variant -> {eval_loss, perplexity, tokens}."""
    return {e["variant"]: {k: e.get(k) for k in LOSS_FIELDS} for e in events if "eval_loss" in e}


def samples_by_variant(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The ``done`` lines of a generate request, grouped by variant, in sample order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event.get("done"):
            grouped.setdefault(event["variant"], []).append(event)
    for samples in grouped.values():
        samples.sort(key=lambda e: e["sample"])
    return grouped
