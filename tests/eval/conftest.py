"""Fixtures for the eval tests: sandboxes of each isolation kind, and a tiny random model.

The sandbox tests run under every configuration that works for the user running them: as
root, bubblewrap with a cgroup per program, bubblewrap without cgroups (the path of a laptop
user whose cgroups are not delegated), and the `unshare` fallback; as an ordinary user,
bubblewrap without cgroups. CI runs them both ways (`.ci/run`).
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from harness.eval.sandbox.config import SandboxConfig
from harness.eval.sandbox.runner import open_sandbox, probe
from harness.threads import torch_threads

FALLBACK_PYTHONS = (sys.executable, "/usr/bin/python3")  # the second for root + /root/.pyenv
ROOT = os.geteuid() == 0
# (kind, cgroups): what each `isolated` parameter means
CONFIGURATIONS = {"bwrap": ("bwrap", "required"), "bwrap-no-cgroup": ("bwrap", "off"), "unshare": ("unshare", "required")}


def python_for(kind: str, cgroups: str = "auto") -> tuple[str | None, str]:
    """An interpreter this isolation kind can run here, or None and why not."""
    problems = []
    for python in FALLBACK_PYTHONS:
        if not os.path.exists(python):
            continue
        problem = probe(kind, python, 64, SandboxConfig().uid_base, cgroups)
        if problem is None:
            return python, ""
        problems.append(f"{python}: {problem}")
    return None, "; ".join(problems)


def sandbox_for(name: str, **limits):
    """A sandbox for one of CONFIGURATIONS, or a skip that says why it cannot run here."""
    kind, cgroups = CONFIGURATIONS[name]
    if not ROOT:
        if kind == "unshare":
            pytest.skip("unshare is refused for an ordinary user (test_unshare_is_refused_for_an_ordinary_user)")
        if cgroups == "off":
            pytest.skip("an ordinary user gets no cgroups anyway: the `bwrap` parameter covers this path")
        cgroups = "auto"
    if not shutil.which(kind):
        pytest.skip(f"{kind} is not installed, so its hostile-program tests are skipped")
    python, why = python_for(kind, cgroups)
    if python is None:
        pytest.skip(f"{kind} (cgroups {cgroups}) cannot run Python here, so its tests are skipped: {why}")
    config = dict(kind=kind, python=python, timeout_s=5, workers=2, cgroups=cgroups)
    return open_sandbox(SandboxConfig(**{**config, **limits}))


@pytest.fixture(scope="session", params=list(CONFIGURATIONS))
def isolated(request):
    """A sandbox of each configuration that works here; the others are skipped, saying why."""
    box = sandbox_for(request.param)
    yield box
    box.close()


@pytest.fixture(scope="session")
def any_sandbox():
    """The strongest sandbox that works here with any interpreter; skip when none does."""
    reasons = []
    for kind in ("bwrap", "unshare"):
        python, why = python_for(kind) if shutil.which(kind) and (ROOT or kind == "bwrap") else (None, "not usable")
        if python:
            box = open_sandbox(SandboxConfig(kind=kind, python=python, workers=2))
            yield box
            box.close()
            return
        reasons.append(f"{kind}: {why}")
    pytest.skip(f"no sandbox works here, so execution tests are skipped ({'; '.join(reasons)})")


@pytest.fixture(scope="session")
def default_sandbox():
    """The sandbox the CLI opens by default (the running interpreter); skip when it fails."""
    from harness.errors import HarnessError

    try:
        box = open_sandbox(SandboxConfig(workers=2))
    except HarnessError as exc:
        pytest.skip(f"the default sandbox does not work here, so CLI execution tests are skipped: {exc}")
    yield box
    box.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer random Llama with a trained byte-level BPE tokenizer (scores ~0, by design)."""
    from harness.eval.benchmarks.random_model import build_random_model

    shape = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
                 intermediate_size=64, vocab_size=512)  # fmt: skip
    return build_random_model(tmp_path_factory.mktemp("tiny_model"), **shape)


@pytest.fixture(scope="session")
def code_model(tmp_path_factory):
    """The tiny Llama above after a few seconds of training on HumanEval/MBPP text: its greedy
    completions end at different stop strings, or run to max_gen_toks (a random model's never
    stop). Trained with one thread, so it is the same model on every run here."""
    from harness.eval.benchmarks.random_model import build_code_model

    shape = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
                 intermediate_size=64, vocab_size=512)  # fmt: skip
    with torch_threads(1):
        return build_code_model(tmp_path_factory.mktemp("code_model"), steps=120, **shape)
