"""`harness container run/exec`: a harness command inside the pinned image.

The inner command is data (`["harness", "run", recipe, *overrides]` or anything else), so
the same runner serves `harness run`, `harness plan` and checks. Planning is pure (tested
without an engine); `execute` hands the plan to the docker SDK.

Decisions, and why:
- The working directory and the data cache are bind-mounted read-write at the *same*
  absolute paths as on the host: `runs/`, `mlflow.db` and `mlruns/` land where a host run
  puts them, and every path recorded inside (MLflow artifact URIs, manifests) is valid outside.
- The process runs as the caller (`--user uid:gid`), so files it writes belong to the caller.
- Training gets `--network none`. MLflow then works only with a local store: an unset
  MLFLOW_TRACKING_URI (sqlite:///mlflow.db in the working directory), or a sqlite:/file: URI,
  whose directory is mounted too. A remote server is refused with the fix (network bridge,
  or log locally and sync later); it is never silently dropped.
- Root filesystem read-only, /tmp a tmpfs (HOME and caches live there), no capabilities,
  no-new-privileges, limits on CPUs, memory, processes and /dev/shm, tini as PID 1 so that
  Ctrl-C and SIGTERM reach the harness.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from harness.containers import IMAGE_ENV
from harness.containers.config import ContainerConfig
from harness.errors import HarnessError, one_line

CACHE_ENV = "MTP_HARNESS_CACHE"
# Passed through from the caller's environment when set: tracking, harness settings, threads.
PASS_PREFIXES = ("MLFLOW_", "MTP_HARNESS_")
PASS_NAMES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "TZ")
INNER_HOME = "/tmp/home"


@dataclass(frozen=True)
class HostFacts:
    cpus: int
    memory_bytes: int
    has_gpus: bool

    @classmethod
    def detect(cls) -> "HostFacts":
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        gpus = Path("/dev/nvidiactl").exists()
        return cls(cpus=os.cpu_count() or 1, memory_bytes=memory, has_gpus=gpus)


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class RunPlan:
    image: str  # `repo:tag@sha256:<id>`, also exported to the process as IMAGE_ENV
    command: list[str]
    user: str
    workdir: str
    environment: dict[str, str]
    mounts: list[Mount]
    network: str
    nano_cpus: int
    mem_limit: int
    pids_limit: int
    shm_size: str
    gpus: int | None  # None: no GPU request; -1: all
    tmpfs: dict[str, str] = field(default_factory=lambda: {"/tmp": "rw,exec,nosuid,size=8g,mode=1777"})


def parse_size(text: str) -> int:
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.lower()
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def cache_dir(environ: Mapping[str, str]) -> Path:
    default = Path(environ.get("HOME", str(Path.home()))) / ".cache" / "mtp-harness"
    return Path(environ.get(CACHE_ENV) or default).expanduser().resolve()


def tracking_mounts(uris: list[str], network: str, workdir: Path) -> list[Mount]:
    """Directories the MLflow store needs; a remote URI without a network is an error."""
    mounts: list[Mount] = []
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme == "sqlite":
            # sqlite:///rel.db is relative to the working directory; sqlite:////abs.db absolute.
            directory = (workdir / uri[len("sqlite:///"):]).resolve().parent
        elif parsed.scheme in ("", "file"):
            directory = (workdir / (parsed.path if parsed.scheme else uri)).resolve()
        elif network == "none":
            raise HarnessError(
                f"MLflow tracking URI {uri} is a server, which a container with network none cannot reach",
                fix="run with --network bridge, or unset MLFLOW_TRACKING_URI to log to the local "
                "store (mlflow.db) and sync to the server afterwards")
        else:
            continue
        if directory != workdir and workdir not in directory.parents:
            directory.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(str(directory), str(directory)))
    return mounts


def _gpu_request(config: ContainerConfig, host: HostFacts) -> int | None:
    if config.gpus == "none" or (config.gpus == "auto" and not host.has_gpus):
        return None
    return -1 if config.gpus in ("auto", "all") else int(config.gpus)


def inner_environment(image: str, cache: Path, config: ContainerConfig, environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k.startswith(PASS_PREFIXES) or k in PASS_NAMES}
    env.update({IMAGE_ENV: image, CACHE_ENV: str(cache), "HOME": INNER_HOME, "TMPDIR": "/tmp"})
    if config.network == "none":
        # Nothing could be fetched anyway; offline mode fails fast instead of retrying.
        env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    return env


def plan_run(command: list[str], image: str, config: ContainerConfig, workdir: Path,
             environ: Mapping[str, str], host: HostFacts) -> RunPlan:
    """Everything `docker run` needs, decided without an engine."""
    workdir = workdir.resolve()
    if workdir == Path("/"):
        raise HarnessError("refusing to mount / into the container", fix="run from the project directory")
    cache = cache_dir(environ)
    cache.mkdir(parents=True, exist_ok=True)
    uris = [u for u in (environ.get("MLFLOW_TRACKING_URI"),) if u]
    mounts = [Mount(str(workdir), str(workdir))]
    if cache != workdir and workdir not in cache.parents:
        mounts.append(Mount(str(cache), str(cache)))
    mounts += [m for m in tracking_mounts(uris, config.network, workdir) if m not in mounts]
    memory = parse_size(config.memory) if config.memory else int(host.memory_bytes * 0.9)
    return RunPlan(
        image=image, command=list(command), user=f"{os.getuid()}:{os.getgid()}", workdir=str(workdir),
        environment=inner_environment(image, cache, config, environ), mounts=mounts,
        network=config.network, nano_cpus=int((config.cpus or host.cpus) * 1e9), mem_limit=memory,
        pids_limit=config.pids_limit, shm_size=config.shm_size, gpus=_gpu_request(config, host),
    )


def device_requests(plan: RunPlan) -> list | None:
    """The GPUs as the docker SDK asks for them: `docker run --gpus all` is
    `DeviceRequest(count=-1, capabilities=[["gpu"]])`, `--gpus 2` is count=2. The engine hands
    the request to the NVIDIA container toolkit, which mounts the host driver's libraries and
    the device nodes; None asks for no GPU (and needs no toolkit)."""
    from docker.types import DeviceRequest

    if plan.gpus is None:
        return None
    return [DeviceRequest(count=plan.gpus, capabilities=[["gpu"]])]


def execute(client, plan: RunPlan, out=None) -> int:
    """Start the container, stream its output, return its exit status; remove it after."""
    from docker.errors import APIError
    from docker.types import Mount as DockerMount

    out = out or sys.stdout.buffer
    devices = device_requests(plan)
    try:
        container = client.containers.create(
            plan.image.split("@", 1)[1], plan.command, user=plan.user, working_dir=plan.workdir,
            environment=plan.environment, network_mode=plan.network, nano_cpus=plan.nano_cpus,
            mem_limit=plan.mem_limit, memswap_limit=plan.mem_limit, pids_limit=plan.pids_limit,
            shm_size=plan.shm_size, device_requests=devices, read_only=True, tmpfs=plan.tmpfs,
            init=True, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            mounts=[DockerMount(m.target, m.source, type="bind", read_only=m.read_only) for m in plan.mounts],
            labels={"mtp-harness.image": plan.image},
        )
    except APIError as exc:
        raise HarnessError(f"could not create the container: {one_line(exc.explanation or exc)}",
                           fix="with --gpus, the host needs the NVIDIA container toolkit; else --gpus none") from None
    try:
        # attach, not logs(follow=True): the log stream drops a last line that lacks a newline
        # when the container exits (docker 20.10), and that line is often the result.
        output = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        container.start()
        for chunk in output:
            out.write(chunk)
            out.flush()
        return int(container.wait()["StatusCode"])
    except KeyboardInterrupt:
        container.stop(timeout=30)
        return 130
    finally:
        container.remove(force=True)
