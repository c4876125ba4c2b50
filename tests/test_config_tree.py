"""Hostile recipe files: alias bombs, megabytes of junk, thousands of bad keys and non-finite
numbers fail fast, in one line each (at most ~20 lines in all)."""

from __future__ import annotations

import time

import pytest

from harness.config_tree import MAX_ERROR_LINES, parse_yaml
from harness.errors import HarnessError
from harness.recipe import load_recipe
from tests.conftest import RECIPES

# Every level refers to the one below three times: 3**30 copies once expanded.
MERGE_BOMB = "a0: &a0 {x: 1}\n" + "".join(
    f"a{i}: &a{i} {{<<: *a{i - 1}, y{i}: *a{i - 1}, z{i}: *a{i - 1}}}\n" for i in range(1, 30))
LIST_BOMB = "x0: &x0 [1, 2, 3, 4, 5, 6, 7, 8, 9]\n" + "".join(
    f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]\n" for i in range(1, 12))


def _refused_fast(call, match: str) -> HarnessError:
    started = time.perf_counter()
    with pytest.raises(HarnessError, match=match) as raised:
        call()
    # A guard against hanging (an unguarded bomb expands 3**30 values: hours), not a benchmark:
    # the bound leaves room for a machine busy with two trainings.
    assert time.perf_counter() - started < 60
    return raised.value


def test_an_alias_bomb_under_a_mapping_is_refused(write):
    path = write("bomb.yaml", f"extends: {RECIPES / 'stp.yaml'}\n{MERGE_BOMB}")
    _refused_fast(lambda: load_recipe(path), "aliases expand to more than")


def test_an_alias_bomb_as_a_typed_field_is_refused(write):
    path = write("bomb.yaml", f"extends: {RECIPES / 'stp.yaml'}\n{LIST_BOMB}train: {{steps: *x11}}\n")
    _refused_fast(lambda: load_recipe(path), "aliases expand to more than")


def test_ordinary_aliases_still_work():
    assert parse_yaml("a: &a {x: 1}\nb: *a\nc: {<<: *a, y: 2}\n", "t") == {
        "a": {"x": 1}, "b": {"x": 1}, "c": {"x": 1, "y": 2}}


def test_megabytes_of_keys_are_refused_by_size(write):
    path = write("junk.yaml", "train:\n" + "".join(f"  k{i}: {i}\n" for i in range(200_000)))
    _refused_fast(lambda: load_recipe(path), "too large for a recipe")


def test_thousands_of_unknown_keys_print_twenty_lines_and_a_count(write):
    path = write("junk.yaml", f"extends: {RECIPES / 'stp.yaml'}\ntrain:\n" + "".join(f"  k{i}: {i}\n" for i in range(5000)))
    error = _refused_fast(lambda: load_recipe(path), "unknown key")
    lines = str(error).splitlines()
    assert len(lines) == MAX_ERROR_LINES + 1
    assert lines[-1] == "... and 4,980 more problems of the same kinds"


def test_deep_nesting_is_one_line(write):
    path = write("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n")
    _refused_fast(lambda: load_recipe(path), "nested too deeply|not valid YAML")


@pytest.mark.parametrize("override", ["train.optimizer.lr=inf", "train.optimizer.betas=[0.9, .inf]",
                                      "train.optimizer.weight_decay=.inf"])
def test_non_finite_numbers_are_refused_at_plan(cli, override):
    result = cli("plan", RECIPES / "stp.yaml", override)
    assert result.exit_code == 2
    assert "is not a finite number" in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_non_finite_numbers_in_a_file_name_the_file(write):
    path = write("inf.yaml", f"extends: {RECIPES / 'stp.yaml'}\ntrain: {{optimizer: {{lr: .inf}}}}\n")
    with pytest.raises(HarnessError, match=r"inf\.yaml: train\.optimizer\.lr: inf is not a finite number"):
        load_recipe(path)
