"""Shared test helpers: paths, a tiny recipe, and the CLI runner."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

TINY = """\
recipe_version: 1
name: tiny
model: {n_layers: 2, d_model: 16, n_heads: 2, n_kv_heads: 1, ffn_hidden: 32, vocab_size: 64, seq_len: 8}
train: {steps: 3, global_batch_size: 2, micro_batch_size: 1}
"""


@pytest.fixture
def write(tmp_path):
    """write(name, text) -> path of a dedented file under tmp_path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return _write


@pytest.fixture
def cli():
    """cli(*args) -> click Result of the harness CLI (stderr kept apart from stdout)."""
    from harness.cli import main

    def _run(*args: str):
        return CliRunner().invoke(main, [str(a) for a in args])

    return _run
