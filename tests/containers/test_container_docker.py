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
PROBE = ROOT / "tests" / "containers" / "torch_probe.py"


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


def test_losses_are_bit_identical_across_container_runs_and_the_host(client, image):
    runs = []
    for _ in range(2):
        status, out = _run(client, image, ["python", str(PROBE)])
        assert status == 0, out
        runs.append(json.loads(out.strip().splitlines()[-1]))
    host = json.loads(subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, check=True).stdout)
    assert runs[0]["losses"] == runs[1]["losses"]
    # Same torch wheel, same CPU, one thread: the host agrees to the bit as well.
    assert host["torch"] == runs[0]["torch"] and host["losses"] == runs[0]["losses"]
