"""What `harness container run` asks docker for, decided without an engine."""

import os
from pathlib import Path

import pytest

from harness.containers import IMAGE_ENV, ContainerConfig, container_image
from harness.containers.run import HostFacts, Mount, device_requests, plan_run, tracking_mounts
from harness.errors import HarnessError
from harness.recipe import load_recipe
from tests.conftest import RECIPES

IMAGE = "mtp-harness:cpu-0123456789ab@sha256:" + "f" * 64
HOST = HostFacts(cpus=8, memory_bytes=10 * 2**30, has_gpus=False)


def _plan(tmp_path, config=ContainerConfig(), environ=None, host=HOST):
    environ = {"HOME": str(tmp_path / "home"), **(environ or {})}
    return plan_run(["harness", "plan", "r.yaml"], IMAGE, config, tmp_path / "proj", environ, host)


@pytest.fixture(autouse=True)
def _project(tmp_path):
    (tmp_path / "proj").mkdir()


def test_default_plan(tmp_path):
    plan = _plan(tmp_path, environ={"MLFLOW_EXPERIMENT_NAME": "x", "OMP_NUM_THREADS": "1", "SECRET_TOKEN": "s"})
    proj, cache = str(tmp_path / "proj"), str(tmp_path / "home" / ".cache" / "mtp-harness")
    assert plan.mounts == [Mount(proj, proj), Mount(cache, cache)]
    assert plan.workdir == proj and plan.user == f"{os.getuid()}:{os.getgid()}"
    assert (plan.network, plan.nano_cpus, plan.mem_limit, plan.gpus) == ("none", 8 * 10**9, 9 * 2**30, None)
    env = plan.environment
    assert env[IMAGE_ENV] == IMAGE and env["MTP_HARNESS_CACHE"] == cache and env["HF_HUB_OFFLINE"] == "1"
    assert env["MLFLOW_EXPERIMENT_NAME"] == "x" and env["OMP_NUM_THREADS"] == "1" and "SECRET_TOKEN" not in env
    assert Path(cache).is_dir()


def test_limits_and_gpus_from_the_config(tmp_path):
    config = ContainerConfig(cpus=1.5, memory="512m", pids_limit=128, gpus=2, network="bridge")
    plan = _plan(tmp_path, config)
    assert (plan.nano_cpus, plan.mem_limit, plan.pids_limit, plan.gpus) == (1_500_000_000, 512 * 2**20, 128, 2)
    assert "HF_HUB_OFFLINE" not in plan.environment
    gpu_host = HostFacts(cpus=8, memory_bytes=2**30, has_gpus=True)
    assert _plan(tmp_path, host=gpu_host).gpus == -1
    assert _plan(tmp_path, ContainerConfig(gpus="none"), host=gpu_host).gpus is None


def test_gpus_reach_docker_as_a_device_request(tmp_path):
    """`--gpus all` of `docker run`, as the SDK spells it; built without an engine."""
    from docker.types import DeviceRequest

    gpu_host = HostFacts(cpus=8, memory_bytes=2**30, has_gpus=True)
    [request] = device_requests(_plan(tmp_path, host=gpu_host))
    assert request == DeviceRequest(count=-1, capabilities=[["gpu"]])
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]] and request["Driver"] == ""
    # Asked for on a host without a driver (`--gpus all`, `--gpus 2`): passed on, and the engine says why not.
    all_gpus = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    assert device_requests(_plan(tmp_path, ContainerConfig(gpus="all"))) == all_gpus
    assert device_requests(_plan(tmp_path, ContainerConfig(gpus=2), host=gpu_host))[0]["Count"] == 2
    assert device_requests(_plan(tmp_path)) is None  # auto on a CPU host: no request, no toolkit needed
    assert device_requests(_plan(tmp_path, ContainerConfig(gpus="none"), host=gpu_host)) is None


def test_the_gpus_option_reaches_the_plan(monkeypatch, tmp_path, cli):
    """`harness container exec --gpus all` on this (CPU) host: the request docker would get."""
    import harness.containers.build as build
    import harness.containers.engine as engine
    import harness.containers.run as run
    from harness.containers.build import BuiltImage

    seen = {}
    monkeypatch.setattr(engine, "docker_client", lambda: object())
    monkeypatch.setattr(build, "resolve_image", lambda *a: BuiltImage("mtp-harness:cpu-x", "sha256:" + "f" * 64, True))
    monkeypatch.setattr(run, "execute", lambda client, plan: seen.setdefault("devices", device_requests(plan)) and 0)
    monkeypatch.chdir(tmp_path)
    for option, count in (("all", -1), ("3", 3)):
        seen.clear()
        result = cli("container", "exec", "--cpu", "--gpus", option, "--", "nvidia-smi")
        assert result.exit_code == 0, result.output
        assert seen["devices"] == [{"Driver": "", "Count": count, "DeviceIDs": [], "Capabilities": [["gpu"]],
                                    "Options": {}}]


def test_cache_inside_the_project_is_not_mounted_twice(tmp_path):
    plan = _plan(tmp_path, environ={"MTP_HARNESS_CACHE": str(tmp_path / "proj" / ".cache")})
    assert plan.mounts == [Mount(str(tmp_path / "proj"), str(tmp_path / "proj"))]


def test_local_tracking_stores_are_mounted_at_their_paths(tmp_path):
    proj = tmp_path / "proj"
    assert tracking_mounts(["sqlite:///mlflow.db", "file:./mlruns"], "none", proj) == []
    outside = tmp_path / "shared" / "mlflow.db"
    [mount] = tracking_mounts([f"sqlite:///{outside}"], "none", proj)
    assert mount == Mount(str(outside.parent), str(outside.parent)) and outside.parent.is_dir()
    [mount] = tracking_mounts([f"file://{tmp_path / 'store'}"], "none", proj)
    assert mount.source == str(tmp_path / "store")
    plan = _plan(tmp_path, environ={"MLFLOW_TRACKING_URI": f"sqlite:///{outside}"})
    assert Mount(str(outside.parent), str(outside.parent)) in plan.mounts
    assert plan.environment["MLFLOW_TRACKING_URI"] == f"sqlite:///{outside}"


def test_a_tracking_server_needs_a_network(tmp_path):
    with pytest.raises(HarnessError, match="network none cannot reach.*fix: run with --network bridge"):
        _plan(tmp_path, environ={"MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"})
    plan = _plan(tmp_path, ContainerConfig(network="bridge"), environ={"MLFLOW_TRACKING_URI": "http://m:5000"})
    assert plan.environment["MLFLOW_TRACKING_URI"] == "http://m:5000"


def test_root_is_never_mounted(tmp_path):
    with pytest.raises(HarnessError, match="refusing to mount /"):
        plan_run(["true"], IMAGE, ContainerConfig(), Path("/"), {"HOME": str(tmp_path)}, HOST)


def test_container_section_in_recipes(tmp_path):
    recipe = load_recipe(RECIPES / "stp.yaml", ["container.memory=16g", "container.gpus=2"])
    assert (recipe.container.memory, recipe.container.gpus, recipe.container.network) == ("16g", 2, "none")
    with pytest.raises(HarnessError, match="not a size"):
        load_recipe(RECIPES / "stp.yaml", ["container.memory=lots"])


def test_the_image_variable_names_the_image(monkeypatch):
    monkeypatch.delenv(IMAGE_ENV, raising=False)
    assert container_image() is None
    monkeypatch.setenv(IMAGE_ENV, IMAGE)
    assert container_image() == IMAGE
