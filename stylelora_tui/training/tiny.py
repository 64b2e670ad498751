"""Build a tiny random Llama and its tokenizer, for tests and benchmarks.

Nothing is downloaded: the BPE tokenizer is trained on the given text with
``tokenizers`` and the model's weights are random. It has the real Llama
architecture (q/k/v/o and gate/up/down projections), so every code path of a
real run (Unsloth, PEFT, bitsandbytes 4-bit, save and reload) runs on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

# ChatML, as SmolLM2 and Qwen use: prompts rendered exactly like a real instruct model's.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def build_tiny_llama(
    out_dir: Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    max_position_embeddings: int = 1024,
    seed: int = 0,
    model_vocab_size: int | None = None,
    tie_word_embeddings: bool = False,
    dtype: str = "float32",
) -> Path:
    """Write a small random Llama (config, safetensors weights, tokenizer) to ``out_dir``.

    ``model_vocab_size`` makes the embedding and LM head as big as a real
    model's (the tokenizer only uses its first ids), so memory figures match
    the real shape; ``dtype`` builds the weights directly in that precision.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",  # distinct from eos, or generation never learns to stop
        unk_token="<|endoftext|>",
        model_max_length=max_position_embeddings,
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out_dir)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=max(len(fast), model_vocab_size or 0),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=tie_word_embeddings,
        rope_theta=500_000.0,
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.generation_config.eos_token_id = fast.eos_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
