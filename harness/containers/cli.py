"""`harness container ...`: parse options and delegate to build/base/run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

def _flavor(fn):
    fn = click.option("--vllm", is_flag=True,
                      help="the vLLM flavour: the CUDA image with vllm and ray, on vLLM's own torch")(fn)
    return click.option("--cpu/--cuda", "cpu", default=None,
                        help="image flavour; default: cuda when the host has an NVIDIA driver, else cpu")(fn)


def _flavor_name(cpu: bool | None, vllm: bool = False) -> str:
    if vllm:
        if cpu:
            from harness.errors import HarnessError

            raise HarnessError("--vllm and --cpu name two flavours", fix="vLLM needs GPUs: drop --cpu")
        return "vllm"
    if cpu is None:
        from harness.containers.run import HostFacts

        return "cuda" if HostFacts.detect().has_gpus else "cpu"
    return "cpu" if cpu else "cuda"


def _run_options(fn):
    options = [
        click.option("--image", help="image to run (default: the newest built from the current sources)"),
        _flavor,
        click.option("--network", type=click.Choice(["none", "bridge", "host"]), help="default none"),
        click.option("--cpus", type=float, help="CPU limit in cores (default: all)"),
        click.option("--memory", help="memory limit, e.g. 16g (default: 90% of host memory)"),
        click.option("--gpus", help="auto, none, all or a count (default auto)"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("container", short_help="Pinned images: build, run, exec")
def container() -> None:
    """Pinned images: build them from the lock files, run the harness inside them."""


@container.command()
@click.option("--tag", default=None, help="image name (default mtp-harness-base:bookworm)")
@click.option("--suite", default="bookworm", show_default=True)
@click.option("--mirror", default="http://deb.debian.org/debian", show_default=True)
def base(tag: str | None, suite: str, mirror: str) -> None:
    """Make a local Debian base image (debootstrap + docker import); needs root, no registry."""
    from harness.containers.base import make_base
    from harness.containers.context import DEFAULT_BASE

    make_base(tag or DEFAULT_BASE, suite, mirror, echo=click.echo)


@container.command()
@_flavor
@click.option("--base", "base_image",
              help="base image (default: a local Debian bookworm made by debootstrap, for both flavours)")
@click.option("--nvidia-base", is_flag=True,
              help="cuda only: the digest-pinned nvidia/cuda base instead (needs NVIDIA's registry)")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, path_type=Path),
              help="PEM bundle to trust during and after the build (TLS-intercepting proxies)")
@click.option("--rebuild", is_flag=True, help="build even when an image with the same inputs exists")
def build(cpu: bool | None, vllm: bool, base_image: str | None, nvidia_base: bool, ca_bundle: Path | None,
          rebuild: bool) -> None:
    """Build the image of the current sources, tagged by the hash of its inputs."""
    from harness.containers.build import build_image
    from harness.containers.context import NVIDIA_CUDA_BASE
    from harness.errors import HarnessError

    flavor = _flavor_name(cpu, vllm)
    if nvidia_base:
        if flavor != "cuda" or base_image:
            raise HarnessError("--nvidia-base goes with --cuda and without --base (the vLLM lock is for the Debian "
                               "base's Python 3.11)", fix="harness container build --cuda --nvidia-base")
        base_image = NVIDIA_CUDA_BASE
    built = build_image(Path.cwd(), flavor, base_image, ca_bundle, rebuild, echo=click.echo)
    click.echo(built.reference)


@container.command(context_settings={"ignore_unknown_options": True})
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE | ~KEY]...")
@_run_options
def run(recipe: str, overrides: tuple[str, ...], **options) -> None:
    """`harness run RECIPE [overrides]` inside the image (limits from the recipe's container: section)."""
    from harness.recipe import load_recipe

    loaded = load_recipe(recipe, overrides)  # errors surface here, before any container starts
    _check_inside(Path(recipe))
    command = ["harness", "run", recipe, *overrides]
    sys.exit(_execute(command, loaded.container, options))


@container.command("exec", context_settings={"ignore_unknown_options": True})
@_run_options
@click.argument("command", nargs=-1, required=True)
def exec_(command: tuple[str, ...], **options) -> None:
    """Any command inside the image, e.g. `harness container exec -- harness plan recipes/stp.yaml`."""
    from harness.containers.config import ContainerConfig

    sys.exit(_execute(list(command), ContainerConfig(), options))


def _check_inside(recipe: Path) -> None:
    from harness.errors import HarnessError

    cwd = Path.cwd().resolve()
    if cwd not in recipe.resolve().parents:
        raise HarnessError(f"{recipe} is outside the working directory {cwd}, which is all the container sees",
                           fix="run from a directory that contains the recipe (the repository root)")


def _execute(command: list[str], config, options: dict) -> int:
    from pydantic import ValidationError

    from harness.containers.build import resolve_image
    from harness.containers.engine import docker_client
    from harness.containers.run import HostFacts, execute, plan_run
    from harness.errors import HarnessError, one_line

    updates = {k: options[k] for k in ("network", "cpus", "memory") if options.get(k) is not None}
    if options.get("gpus"):
        updates["gpus"] = int(options["gpus"]) if options["gpus"].isdigit() else options["gpus"]
    if options.get("image"):
        updates["image"] = options["image"]
    try:
        config = config.model_validate({**config.model_dump(), **updates})
    except ValidationError as exc:
        raise HarnessError(f"container options: {one_line(exc.errors()[0]['msg'])}") from None
    client = docker_client()
    image = resolve_image(client, Path.cwd(), _flavor_name(options.get("cpu"), options.get("vllm", False)),
                          config.image)
    plan = plan_run(command, image.reference, config, Path.cwd(), dict(os.environ),
                    HostFacts.detect())
    click.echo(f"container: {image.reference} network={plan.network} user={plan.user}", err=True)
    return execute(client, plan)
