"""``stylelora-tui prepare SOURCE... -o DIR``: turn books, blogs or style.jsonl into training data.

Exit codes: 0 everything was used; 1 output written but something was rejected
(listed on stderr as ``path:line: reason``); 2 nothing usable, or bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylelora_tui.corpus.pipeline import CorpusError, PrepareOptions, prepare
from stylelora_tui.corpus.report import TOKENS_PER_WORD_ESTIMATE

_DEFAULTS = PrepareOptions()


def add_arguments(parser: argparse.ArgumentParser, name: str = "prepare") -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help=".txt/.md files, folders of them, style.jsonl files ({\"text\": ...} per line), "
                             "or Hugging Face dataset names (owner/name or owner/name:split)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                        help="corpus folder to write (style.jsonl, train.jsonl, eval.jsonl, report.json)")
    parser.add_argument("--min-words", type=int, default=_DEFAULTS.min_words, help="shortest passage (default %(default)s)")
    parser.add_argument("--max-words", type=int, default=_DEFAULTS.max_words, help="longest passage (default %(default)s)")
    parser.add_argument("--input-words", type=int, default=_DEFAULTS.input_words,
                        help="words of a passage given as the record's input (default %(default)s)")
    parser.add_argument("--output-words", type=int, default=_DEFAULTS.output_words,
                        help="words that follow, the record's output (default %(default)s)")
    parser.add_argument("--instruction", default=_DEFAULTS.instruction, help="the records' instruction (default %(default)r)")
    parser.add_argument("--eval-fraction", type=float, default=_DEFAULTS.eval_fraction,
                        help="share of records held out for evaluation (default %(default)s)")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seed of the train/eval split (default %(default)s)")
    parser.add_argument("--tokenizer", default=None, metavar="PATH",
                        help="tokenizer.json or a model folder holding one, for exact token counts "
                             f"(default: estimate {TOKENS_PER_WORD_ESTIMATE} tokens per word)")
    parser.add_argument("--near-duplicate-threshold", type=float, default=_DEFAULTS.near_duplicate_threshold,
                        metavar="J", help="drop passages whose word 5-gram Jaccard similarity to an earlier one is "
                                          "at least J; above 1 turns it off (default %(default)s)")
    parser.add_argument("--text-column", default=_DEFAULTS.text_column,
                        help="text column of Hugging Face datasets (default %(default)s)")


def _progress_printer():
    """A progress line on stderr, only when a person is watching a terminal."""
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        return None

    def show(message: str, fraction: float) -> None:
        sys.stderr.write(f"\r\033[K[{fraction:4.0%}] {message[:70]}")
        if fraction >= 1.0:
            sys.stderr.write("\r\033[K")
        sys.stderr.flush()

    return show


def run(args: argparse.Namespace) -> int:
    options = PrepareOptions(
        min_words=args.min_words,
        max_words=args.max_words,
        input_words=args.input_words,
        output_words=args.output_words,
        instruction=args.instruction,
        eval_fraction=args.eval_fraction,
        seed=args.seed,
        tokenizer=args.tokenizer,
        near_duplicate_threshold=args.near_duplicate_threshold,
        text_column=args.text_column,
    )
    try:
        report = prepare(args.sources, args.output, options, progress=_progress_printer())
    except CorpusError as error:
        print(f"stylelora-tui prepare: error: {error}", file=sys.stderr)
        return 2
    for skipped in report.skipped_files:
        print(skipped, file=sys.stderr)
    for reject in report.rejects:
        print(reject, file=sys.stderr)
    print(report.format_text(max_rejects=0))
    if report.output_written:
        print(f"Wrote {args.output}/ (style.jsonl, train.jsonl, eval.jsonl, report.json)")
    else:
        print("No passages found: nothing written. See the problems above.", file=sys.stderr)
    return report.exit_code


if __name__ == "__main__":  # pragma: no cover - `python -m stylelora_tui.cli.corpus` for debugging
    _parser = argparse.ArgumentParser(prog="stylelora-tui prepare")
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
