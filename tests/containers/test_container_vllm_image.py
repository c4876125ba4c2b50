"""The vLLM image (`harness container build --vllm`), checked inside on a CPU host.

Not run in CI, for the reasons of the CUDA image's test (GBs of wheels, a ~10 GB image):
    MTP_HARNESS_TEST_CUDA_IMAGE=1 python -m pytest -m cuda_image tests/containers -v
Without a GPU vLLM cannot start an engine here; what is checked is that the image is whole:
vLLM's torch, vllm and ray import with the harness's stack, `eval.backend: vllm` is no longer
refused there, and the harness plans and trains (on the CPU) on vLLM's torch.
"""

import json
import os
from pathlib import Path

import pytest

from harness.containers.build import build_image
from tests.conftest import ROOT
from tests.containers.test_container_cuda_image import OPT_IN, _run, trains_six_steps_inside
from tests.containers.test_container_docker import client  # noqa: F401 (client: a fixture)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.cuda_image, pytest.mark.timeout(5400),
              pytest.mark.skipif(os.environ.get(OPT_IN) != "1",
                                 reason=f"the vLLM image build is not run in CI (set {OPT_IN}=1)")]


@pytest.fixture(scope="module")
def image(client):
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    return build_image(ROOT, "vllm", ca_bundle=ca if ca.exists() else None, echo=lambda line: None)


def test_vllm_and_the_harness_import_inside(client, image):
    assert image.tag.startswith("mtp-harness:vllm-")
    code = (
        "import json, sys, torch, vllm, ray, deepspeed, lm_eval, transformers, harness\n"
        "from harness.eval.benchmarks.lmeval import check_backend, vllm_importable\n"
        "from harness.eval.config import EvalConfig\n"
        "check_backend(EvalConfig(backend='vllm'))\n"
        "print(json.dumps({'python': sys.version.split()[0], 'torch': torch.__version__, 'cuda': torch.version.cuda,"
        " 'vllm': vllm.__version__, 'ray': ray.__version__, 'transformers': transformers.__version__,"
        " 'importable': vllm_importable(), 'harness': harness.__file__}))\n"
    )
    status, out = _run(client, image, ["python", "-c", code])
    assert status == 0, out
    facts = json.loads(out.strip().splitlines()[-1])
    print(facts)
    locked = {line.split("==")[0]: line.split("==")[1].split()[0]
              for line in (ROOT / "containers" / "requirements-vllm.lock").read_text().splitlines()
              if "==" in line and not line.startswith(" ")}
    assert facts["vllm"] == locked["vllm"] and facts["ray"] == locked["ray"]
    assert facts["torch"].split("+")[0] == locked["torch"] and facts["importable"]
    assert facts["harness"].startswith("/opt/venv/")


def test_harness_trains_on_vllms_torch_inside(client, image):
    trains_six_steps_inside(client, image, "vllm")
