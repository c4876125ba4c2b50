"""Build contexts and the content hash that tags images."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.containers.context import (
    FLAVORS,
    assemble,
    fetch_local_wheels,
    image_labels,
    image_tag,
    inputs_hash,
    locked_local_wheels,
    package_sources,
    source_hash,
)
from harness.errors import HarnessError
from tests.conftest import ROOT


@pytest.fixture
def tree(tmp_path):
    """A copy of the sources a build reads: containers/, harness/, pyproject.toml, README.md."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "harness", root / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "containers", root / "containers", ignore=shutil.ignore_patterns("wheels"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, root / name)
    return root


def test_package_sources_skip_bytecode_and_need_a_source_tree(tree, tmp_path):
    (tree / "harness" / "__pycache__").mkdir()
    (tree / "harness" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    files = [str(f) for f in package_sources(tree)]
    assert "pyproject.toml" in files and "harness/containers/context.py" in files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    with pytest.raises(HarnessError, match="not an mtp-harness source tree"):
        package_sources(tmp_path)


def test_source_hash_follows_sources_locks_and_dockerfile(tree):
    cpu = FLAVORS["cpu"]
    before = source_hash(tree, cpu)
    assert source_hash(tree, cpu) == before and source_hash(tree, FLAVORS["cuda"]) != before
    (tree / "harness" / "__pycache__").mkdir(exist_ok=True)
    (tree / "harness" / "__pycache__" / "y.pyc").write_bytes(b"\1")
    assert source_hash(tree, cpu) == before  # bytecode is not a source
    for path in ["harness/recipe.py", "containers/requirements-cpu.lock", "containers/Dockerfile.cpu"]:
        original = (tree / path).read_bytes()
        (tree / path).write_bytes(original + b"\n")
        assert source_hash(tree, cpu) != before, path
        (tree / path).write_bytes(original)
    (tree / "containers" / "requirements.lock").write_text("changed")  # the other flavour's lock
    assert source_hash(tree, cpu) == before


def test_inputs_hash_follows_base_and_ca_bundle(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("cert")
    one = inputs_hash("s", "base:1", "sha256:a", None)
    assert one != inputs_hash("s", "base:1", "sha256:b", None) != inputs_hash("s", "base:1", "sha256:a", ca)
    assert image_tag(FLAVORS["cpu"], one) == f"mtp-harness:cpu-{one[:12]}"


def test_locked_local_wheels_are_the_plus_versions():
    text = (ROOT / "containers" / "requirements-cpu.lock").read_text()
    [torch] = locked_local_wheels(text)
    assert (torch.name, torch.version, len(torch.hashes)) == ("torch", "2.13.0+cpu", 1)
    assert locked_local_wheels((ROOT / "containers" / "requirements.lock").read_text()) == []


def _fake_wheel_lock(tree, payload: bytes) -> Path:
    wheel = tree / "demo_pkg-1.0+cpu-py3-none-any.whl"
    wheel.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    (tree / "containers" / "requirements-cpu.lock").write_text(f"demo-pkg==1.0+cpu \\\n    --hash=sha256:{digest}\n")
    return wheel


def test_fetch_local_wheels_uses_a_matching_wheel_and_refuses_others(tree, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the fallback `pip download` must not reach an index
    wheel = _fake_wheel_lock(tree, b"wheel bytes")
    (tree / "containers" / "wheels").mkdir()
    shutil.copyfile(wheel, tree / "containers" / "wheels" / wheel.name)
    assert [p.name for p in fetch_local_wheels(tree, FLAVORS["cpu"], echo=lambda s: None)] == [wheel.name]
    (tree / "containers" / "wheels" / wheel.name).write_bytes(b"tampered")
    with pytest.raises(HarnessError, match="no wheel for demo-pkg==1.0\\+cpu"):
        fetch_local_wheels(tree, FLAVORS["cpu"], echo=lambda s: None)


def test_assemble_writes_the_context_the_dockerfiles_expect(tree, tmp_path):
    wheel = _fake_wheel_lock(tree, b"w")
    ca = tmp_path / "proxy.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    assemble(tree, FLAVORS["cpu"], ctx, [wheel], ca)
    assert (ctx / "Dockerfile").read_bytes() == (tree / "containers" / "Dockerfile.cpu").read_bytes()
    assert (ctx / "requirements.lock").read_bytes() == (tree / "containers" / "requirements-cpu.lock").read_bytes()
    for rel in ["build-tools.lock", f"wheels/{wheel.name}", "certs/host-ca-bundle.crt",
                "src/pyproject.toml", "src/README.md", "src/harness/__init__.py"]:
        assert (ctx / rel).is_file(), rel
    empty = tmp_path / "ctx2"
    empty.mkdir()
    assemble(tree, FLAVORS["cuda"], empty, [], None)
    assert [p.name for p in (empty / "certs").iterdir()] == [".keep"]


def test_labels_name_version_commit_and_lock(tree):
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    labels = image_labels(tree, FLAVORS["cpu"], "src", "inp", "base:1", "sha256:b")
    lock = hashlib.sha256((tree / "containers" / "requirements-cpu.lock").read_bytes()).hexdigest()
    assert labels["mtp-harness.lock-sha256"] == lock
    assert labels["org.opencontainers.image.revision"] == "unknown"  # a repository without commits
    assert labels["org.opencontainers.image.base.digest"] == "sha256:b"
    assert {"org.opencontainers.image.version", "mtp-harness.source-sha256", "mtp-harness.flavor"} <= set(labels)
