"""`harness data ...`: prepare a recipe's token data, and inspect the rows of a training step."""

from __future__ import annotations

import click

overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE | ~KEY]...")


@click.group("data", short_help="Prepare and inspect a recipe's token data")
def data() -> None:
    """Prepare a recipe's corpus, tokenizer and token shards; inspect training batches."""


@data.command()
@click.argument("path", type=click.Path(dir_okay=False))
@overrides_argument
@click.option("--verify", is_flag=True, help="re-hash every corpus file instead of trusting recorded sizes and times")
@click.option("--relative-to", type=click.Path(file_okay=False), default=None,
              help="where relative paths in the recipe start (default: its directory), as for `harness run`")
def prepare(path: str, overrides: tuple[str, ...], verify: bool, relative_to: str | None) -> None:
    """Prepare (or find in the cache) the recipe's data and print its manifest summary
    (a Slurm job runs this once before its ranks start)."""
    from harness.console import stdout_console
    from harness.data.inspector import prepare_recipe, print_summary
    from harness.recipe import load_recipe

    recipe = load_recipe(path, overrides, base_dir=relative_to)
    console = stdout_console()
    print_summary(recipe, prepare_recipe(recipe, path, verify=verify, relative_to=relative_to), console)


@data.command()
@click.argument("path", type=click.Path(dir_okay=False))
@overrides_argument
@click.option("--step", type=click.IntRange(min=0), required=True, help="training step (0-based)")
@click.option("--rank", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--world-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-chars", type=click.IntRange(min=1), default=None, help="cut each row's text at this length")
def inspect(
    path: str, overrides: tuple[str, ...], step: int, rank: int, world_size: int, max_chars: int | None
) -> None:
    """Print the decoded rows that a rank trains on at a step."""
    from harness.console import stdout_console
    from harness.data.inspector import prepare_recipe, print_step
    from harness.recipe import load_recipe

    recipe = load_recipe(path, overrides)
    print_step(recipe, prepare_recipe(recipe, path), step, rank, world_size, stdout_console(), max_chars)
