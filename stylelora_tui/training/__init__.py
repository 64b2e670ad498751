"""Training: the trainer subprocess and what it needs.

``trainer`` is the process entry (``python -m stylelora_tui.training.trainer
RUN_DIR``), ``backends`` loads the model with Unsloth or plain PEFT,
``models`` resolves model names (demo, GGUF, folders, Hub ids), and
``estimate``/``model_shapes`` predict memory and trainable parameters
without loading anything heavy. ``tiny`` builds a tiny model for tests.
"""
