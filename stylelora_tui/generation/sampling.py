"""Sampling several continuations of one prompt in one batched ``generate`` call.

Each sample keeps its own seed: row ``r`` of a batch draws its randomness
from its own ``torch.Generator`` seeded with ``seed + r``, through the
Gumbel-max trick (``argmax(logits / T + Gumbel noise)`` is a draw from
``softmax(logits / T)``; top-p filtering happens before the noise). So a
sample's text depends on its seed alone, not on how many samples share the
batch, and one row reproduces it:

    torch.manual_seed(...)  # not needed: the generator is the sample's own
    model.generate(**inputs, do_sample=False,
                   logits_processor=[SeededSampler([seed], temperature, top_p)])

Streaming follows every row: ``BatchStreamer`` hands each row's new text to a
callback and stops following a row at its end-of-sequence token (the rows
that are still going pad the finished ones).

Heavy imports (torch, transformers) happen inside the functions.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence


class SeededSampler:
    """A logits processor that turns greedy decoding into seeded sampling, one generator per row."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, device: Any = "cpu") -> None:
        import torch

        self.temperature, self.top_p = float(temperature), float(top_p)
        self.generators = []
        for seed in seeds:
            generator = torch.Generator(device=device)
            generator.manual_seed(int(seed))
            self.generators.append(generator)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            # Keep the smallest set of tokens whose probability reaches top_p (at least one).
            ordered, order = torch.sort(scores, descending=True, dim=-1)
            cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
            drop = cumulative - ordered.softmax(dim=-1) >= self.top_p
            drop[..., 0] = False
            scores = scores.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
        noise = torch.stack([
            -torch.log(-torch.log(torch.rand(scores.shape[-1], generator=generator, device=scores.device)
                                  .clamp_(min=1e-20, max=1.0 - 1e-7)))
            for generator in self.generators
        ])
        return scores + noise


class TokenStreamer:
    """A transformers streamer that hands each new piece of decoded text to a callback.

    The whole generated sequence is decoded each time and only the new suffix
    is sent, so multi-token characters and merged spaces come out right; text
    ending in an incomplete character waits for the next token.
    """

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.ids: list[int] = []
        self.sent = 0
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call is the prompt
            self.prompt_seen = True
            return
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        self.flush(final=False)

    def end(self) -> None:
        self.flush(final=True)

    def flush(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:
            return
        if len(text) > self.sent:
            piece, self.sent = text[self.sent :], len(text)
            self.on_text(piece)


class BatchStreamer:
    """Streams every row of a batched ``generate``: one ``TokenStreamer`` per row, until its end token."""

    def __init__(self, tokenizer: Any, callbacks: Sequence[Callable[[str], None]], eos_ids: Sequence[int]):
        self.rows = [TokenStreamer(tokenizer, callback) for callback in callbacks]
        self.finished = [False] * len(self.rows)
        self.eos_ids = set(eos_ids)
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call is the prompt
            self.prompt_seen = True
            return
        for index, token in enumerate(value.reshape(-1).tolist()):
            if self.finished[index]:
                continue  # padding after this row's end
            row = self.rows[index]
            row.ids.append(int(token))
            if int(token) in self.eos_ids:
                self.finished[index] = True
            row.flush(final=False)

    def end(self) -> None:
        for row in self.rows:
            row.flush(final=True)


def until_end(tokens: list[int], eos_ids: Sequence[int]) -> list[int]:
    """A row's new tokens up to and including its first end token (the rest is padding)."""
    for index, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: index + 1]
    return tokens
