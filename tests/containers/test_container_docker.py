"""The CPU image end to end: built from a local base, harness inside, isolated, bit-exact.

Needs a Docker engine (skipped when none answers) and, the first time, about ten minutes to
build the image (debootstrap base + pip install of the lock). Run:
    dockerd > /tmp/dockerd.log 2>&1 &   # as root, once
    python -m pytest -m docker tests/containers -v
"""

import json
import os
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest

from harness.containers import IMAGE_ENV, ContainerConfig
from harness.containers.build import build_image, resolve_image
from harness.containers.engine import docker_client, engine_available
from harness.containers.run import HostFacts, execute, plan_run
from tests.conftest import ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def client():
    if not engine_available():
        pytest.skip("no Docker engine answers (start dockerd; see containers/README.md)")
    return docker_client()


@pytest.fixture(scope="module")
def image(client):
    """Built once per session; a later session with unchanged inputs reuses it."""
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    return build_image(ROOT, "cpu", ca_bundle=ca if ca.exists() else None, echo=lambda line: None)


def _run(client, image, command, config=ContainerConfig()) -> tuple[int, str]:
    plan = plan_run(command, image.reference, config, ROOT, dict(os.environ), HostFacts.detect())
    out = BytesIO()
    status = execute(client, plan, out)
    return status, out.getvalue().decode()


def test_image_is_tagged_by_its_inputs_and_labelled(client, image):
    labels = client.images.get(image.id).labels
    assert image.tag.startswith("mtp-harness:cpu-") and labels["mtp-harness.inputs-sha256"].startswith(image.tag[-12:])
    for key in ["org.opencontainers.image.version", "org.opencontainers.image.revision",
                "org.opencontainers.image.base.digest", "mtp-harness.lock-sha256"]:
        assert labels[key]
    again = build_image(ROOT, "cpu", ca_bundle=Path("/etc/ssl/certs/ca-certificates.crt"), echo=lambda line: None)
    assert again.reused and again.id == image.id
    assert resolve_image(client, ROOT, "cpu", None).id == image.id
    assert client.images.get(image.id).attrs["Config"]["User"] == "10001:10001"


def test_inside_the_container(client, image, tmp_path_factory):
    target = ROOT / "runs" / f"container-test-{os.getpid()}.txt"
    code = (
        "import json, os, pathlib, harness, torch\n"
        f"pathlib.Path({str(target)!r}).write_text('x')\n"
        "try:\n    open('/opt/x', 'w'); ro = False\nexcept OSError:\n    ro = True\n"
        "print(json.dumps({'uid': os.getuid(), 'nets': sorted(os.listdir('/sys/class/net')), 'ro': ro,"
        f" 'image': os.environ['{IMAGE_ENV}'], 'torch': torch.__version__, 'harness': harness.__file__}}))\n"
    )
    target.parent.mkdir(exist_ok=True)
    try:
        status, out = _run(client, image, ["python", "-c", code])
        assert status == 0, out
        facts = json.loads(out.strip().splitlines()[-1])
        assert facts["uid"] == os.getuid() and target.stat().st_uid == os.getuid()
        assert facts["nets"] == ["lo"] and facts["ro"]  # network none; read-only root
        assert facts["image"] == image.reference and facts["torch"] == "2.13.0+cpu"
        assert facts["harness"].startswith("/opt/venv/")  # the image's copy, not the mounted tree
    finally:
        target.unlink(missing_ok=True)


def test_harness_cli_in_the_container(image):
    proc = subprocess.run([sys.executable, "-m", "harness", "container", "exec", "--cpu", "--",
                           "harness", "plan", "recipes/deepseek_n2.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "deepseek_n2" in proc.stdout and image.tag in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "harness", "container", "exec", "--cpu", "--", "false"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1  # the inner status is the command's


TINY = """\
recipe_version: 1
name: container-check
model: {{stp_layers: 2, d_model: 32, n_heads: 2, n_kv_heads: 1, ffn_hidden: 64, vocab_size: 320, seq_len: 32}}
objective: {{kind: deepseek, depth: 1}}
data: {{source: {{kind: local, path: '{corpus}'}}, decontaminate: {{enabled: false}}}}
train: {{steps: 6, global_batch_size: 4, micro_batch_size: 2, num_threads: 1, eval_every: 3, eval_batches: 2}}
eval: {{enabled: false}}
"""


def _losses(runs: Path) -> list:
    (metrics,) = runs.glob("*/track/metrics.jsonl")
    rows = map(json.loads, metrics.read_text().splitlines())
    return [(r["step"], r["loss/depth_1"], r["loss/depth_2"]) for r in rows if "loss/depth_1" in r]


def test_harness_run_is_bit_identical_across_container_runs_and_the_host(client, image):
    """`harness run` (fp32, one thread) in the image twice and on the host, on the same corpus
    (the harness's own sources: each Python's stdlib would differ, Debian's is split up)."""
    work = ROOT / "runs" / f"container-check-{os.getpid()}"
    work.mkdir(parents=True)
    recipe = work / "tiny.yaml"
    recipe.write_text(TINY.format(corpus=ROOT / "harness" / "**" / "*.py"))
    try:
        for name in ("a", "b"):
            status, out = _run(client, image, ["harness", "run", str(recipe), "--runs", str(work / name)])
            assert status == 0, out
        host = subprocess.run([sys.executable, "-m", "harness", "run", str(recipe), "--runs", str(work / "host")],
                              cwd=ROOT, capture_output=True, text=True)
        assert host.returncode == 0, host.stderr
        assert len(_losses(work / "a")) == 6
        assert _losses(work / "a") == _losses(work / "b")
        # Same torch wheel, same CPU, one thread, same corpus: the host agrees to the bit too.
        assert _losses(work / "host") == _losses(work / "a")
        tags = json.loads(next((work / "a").glob("*/track/tags.json")).read_text())
        assert tags["harness.container_image"] == image.reference
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
