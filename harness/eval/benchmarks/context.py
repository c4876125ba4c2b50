"""The context a model was trained on, and how many prompt tokens a task may give it.

A harness export states its trained context in `max_position_embeddings` (the recipe's
`seq_len`); any other Hugging Face model states what its config says. Positions past the
trained context were never trained, so a prompt is left-truncated (its start dropped, as
lm-eval does) to leave room for the task's `max_gen_toks` inside that context. When
`max_gen_toks` would take more than half the context (HumanEval's 1024 new tokens on a
256-token laptop model), the prompt still keeps half the context and the generation runs
past the trained positions; `harness eval` records the budget and how many prompts were cut.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
DEFAULT_CONTEXT = 2048  # lm-eval's own default when a config names none


def trained_context(model_dir: Path) -> int:
    """The model's context in tokens, from its config.json (the first key it has)."""
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: cannot read the model config ({exc})", fix="pass a model directory") from None
    config = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config
    value = next((config[key] for key in CONTEXT_KEYS if isinstance(config.get(key), int)), DEFAULT_CONTEXT)
    if value < 2:
        raise HarnessError(f"{path}: context of {value} tokens leaves no room for a prompt")
    return value


def prompt_budget(context: int, max_gen_toks: int) -> int:
    """Prompt tokens kept: the context minus room to generate, but at least half the context."""
    return max(context - max_gen_toks, context // 2, 1)
