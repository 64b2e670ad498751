"""Training: the trainer subprocess and what it needs.

``trainer`` is the process entry (``python -m stylelora_tui.training.trainer
RUN_DIR``); ``callbacks`` turns the Trainer's callbacks into events and live
samples; ``failures`` words every failure for the user; ``backends`` loads the
model with Unsloth or plain PEFT; ``models`` resolves model names (demo, GGUF,
folders, Hub ids) before a run exists; ``plan`` says what a launch will do;
``estimate``, ``model_shapes`` and ``cards`` predict memory and trainable
parameters without loading anything heavy; ``tiny`` builds a tiny model for
tests.
"""
