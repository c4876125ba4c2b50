"""Shared test helpers: paths, a tiny recipe, and the CLI runner."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

TINY = """\
recipe_version: 1
name: tiny
model: {stp_layers: 2, d_model: 16, n_heads: 2, n_kv_heads: 1, ffn_hidden: 32, vocab_size: 64, seq_len: 8}
train: {steps: 3, global_batch_size: 2, micro_batch_size: 1}
"""


@pytest.fixture
def one_thread():
    """Bit-for-bit comparisons need a fixed thread count (docs/MEASURED.md)."""
    with torch_threads(1):
        yield


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


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """Every test (and every subprocess it starts) gets a private data cache and MLflow
    store, no telemetry, DeepSpeed's CPU accelerator without probing, and the CPU chosen."""
    root = tmp_path_factory.mktemp("env")
    values = {
        "MTP_HARNESS_CACHE": str(root / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DS_ACCELERATOR": "cpu",
        # Tests run on CPU on purpose (two CPU ranks, bf16 on CPU): without this a
        # multi-process or bf16 run without CUDA is refused (harness/devices.py).
        "MTP_HARNESS_DEVICE": "cpu",
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """The URI of a real `mlflow server` over loopback HTTP, one for the session (tests/mlflow_server.py)."""
    from tests.mlflow_server import serve

    with serve(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


# The rank variables a process group needs; an in-process `harness run` sets them (setdefault,
# as a launcher would), so each test puts back what it found for the tests after it.
RANK_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def _restore_rank_variables():
    saved = {key: os.environ.get(key) for key in RANK_VARS}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
