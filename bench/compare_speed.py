"""Compare's samples per second: one batched generate per prompt against one call per sample.

    python bench/compare_speed.py [--model demo] [--prompts 2] [--samples 3] [--tokens 128]

Both paths run in this process on the same model, prompts and settings
(temperature 0.7, top-p 0.9): the old path seeds the global generator and
calls ``generate(do_sample=True)`` once per sample, as the generation process
did until December 2026; the new path asks for every sample of a prompt in
one ``generate`` call with ``generation.sampling.SeededSampler`` (each row its
own seed), as the generation process does now. End-of-sequence is held off
(``min_new_tokens``) so both paths generate exactly the same number of tokens;
the ratio is of samples per second. Prints one table; ``--json`` for a line.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help='"demo" or a model folder')
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both paths")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="weights of the batched path (the sequential one stays float32, as it was)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    from stylelora_tui.demo import demo_corpus_dir
    from stylelora_tui.generation.sampling import SeededSampler
    from stylelora_tui.prompting import render_prompt

    if args.model == "demo":
        from stylelora_tui.training.models import ensure_demo_model

        model_dir = ensure_demo_model(print)
    else:
        model_dir = args.model
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    batched_model = model if args.dtype == "float32" else AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=getattr(torch, args.dtype)).eval()
    texts = [path.read_text(encoding="utf-8").split("\n\n")[1] for path in sorted(demo_corpus_dir().glob("*.md"))]
    records = [{"instruction": "Continue in the author's style:", "input": " ".join(text.split()[:50])}
               for text in texts[: args.prompts]]
    prompts = [tokenizer(render_prompt(tokenizer, r), return_tensors="pt", add_special_tokens=False) for r in records]
    common = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens, pad_token_id=tokenizer.pad_token_id)

    def sequential() -> int:
        for inputs in prompts:
            for seed in range(args.samples):
                torch.manual_seed(seed)
                with torch.no_grad():
                    model.generate(**inputs, do_sample=True, temperature=0.7, top_p=0.9, **common)
        return len(prompts) * args.samples

    def batched() -> int:
        for inputs in prompts:
            batch = {key: value.repeat(args.samples, 1) for key, value in inputs.items()}
            sampler = SeededSampler(range(args.samples), 0.7, 0.9)
            with torch.no_grad():
                batched_model.generate(**batch, do_sample=False, logits_processor=LogitsProcessorList([sampler]), **common)
        return len(prompts) * args.samples

    batched()  # warm-up of both paths (first calls allocate)
    sequential()
    times = {"sequential": [], "batched": []}
    for _ in range(args.rounds):
        for name, path in (("sequential", sequential), ("batched", batched)):
            started = time.perf_counter()
            count = path()
            times[name].append(count / (time.perf_counter() - started))
    rates = {name: max(values) for name, values in times.items()}
    result = {
        "model": str(model_dir), "threads": torch.get_num_threads(), "prompts": args.prompts, "samples": args.samples,
        "tokens": args.tokens, "batched_dtype": args.dtype, "sequential_samples_per_s": round(rates["sequential"], 3),
        "batched_samples_per_s": round(rates["batched"], 3),
        "ratio": round(rates["batched"] / rates["sequential"], 2),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model {result['model']}, {args.prompts} prompts x {args.samples} samples x {args.tokens} tokens, "
          f"{result['threads']} threads, best of {args.rounds} rounds")
    print(f"sequential (one generate per sample): {result['sequential_samples_per_s']:.3f} samples/s")
    print(f"batched (one generate per prompt, {args.dtype}): {result['batched_samples_per_s']:.3f} samples/s")
    print(f"ratio: {result['ratio']:.2f}x  (goal >= 4x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
