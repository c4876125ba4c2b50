"""The `eval:` section and the `harness eval` command line: validation and spellings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.eval.benchmarks.protocols import variants
from harness.eval.config import EvalConfig
from harness.eval.sandbox.config import SandboxConfig
from harness.eval.sandbox.runner import cpu_seconds


def test_defaults_are_the_greedy_protocol():
    cfg = EvalConfig()
    assert cfg.protocol == "greedy" and cfg.batch_size == 8 and cfg.max_gen_toks is None
    assert [(v.name, v.n, v.sampled, v.ks) for v in variants(cfg)] == [("greedy", 1, False, (1,))]
    assert variants(cfg)[0].generation_kwargs(None) == {"do_sample": False}


def test_sampled_generation_kwargs():
    (variant,) = variants(EvalConfig(protocol="sampled", temperatures=[0.8], n_samples=10))
    assert variant.n == 10 and variant.ks == (1, 10)
    assert variant.generation_kwargs(512) == {"do_sample": True, "temperature": 0.8, "top_p": 0.95, "max_gen_toks": 512}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"temperatures": [0.0]}, "must be > 0"),
        ({"protocol": "sampled", "n_samples": 5, "ks": [10, 100]}, "pass@k needs k <= n"),
        ({"tasks": ["gsm8k"]}, "humaneval"),
        ({"sandbox": {"timeout_s": 0}}, "greater than 0"),
        ({"sandbox": {"network": True}}, "Extra inputs"),
    ],
)
def test_invalid_sections_are_refused(data, message):
    with pytest.raises(ValidationError, match=message):
        EvalConfig.model_validate(data)


def test_cpu_limit_follows_the_timeout():
    assert cpu_seconds(SandboxConfig(timeout_s=7.5)) == 8
    assert cpu_seconds(SandboxConfig(timeout_s=7.5, cpu_s=3)) == 3


def test_recipe_eval_sections_still_validate():
    from harness.recipe import load_recipe
    from tests.conftest import RECIPES

    assert load_recipe(RECIPES / "laptop" / "base.yaml").eval.max_gen_toks == 128  # bounded for the laptop study
    assert load_recipe(RECIPES / "base.yaml").eval.max_gen_toks == 64  # and tighter for the quick main job
    assert load_recipe(RECIPES / "cluster" / "base_7b.yaml").eval.protocol == "sampled"


def test_eval_group_spellings(cli, tmp_path):
    assert "score" in cli("eval", "--help").output
    for args in (("eval", tmp_path), ("eval", "run", tmp_path)):
        result = cli(*args)
        assert result.exit_code == 2 and "neither a harness run directory" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tasks", "humaneval,gsm8k"), "unknown task gsm8k; choose from humaneval, mbpp"),
        (("--temperatures", "hot"), "--temperatures 'hot' is not a comma-separated list"),
        (("--protocol", "sampled", "--temperatures", "0"), "error: options: eval.temperatures must be > 0"),
    ],
)
def test_bad_options_are_one_line_errors(cli, tmp_path, args, message):
    result = cli("eval", tmp_path, *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_protocols_are_named_for_what_they_do_and_the_old_names_still_read():
    assert EvalConfig(protocol="deepseek").protocol == "greedy"
    assert EvalConfig(protocol="meta", n_samples=4, ks=[1]).protocol == "sampled"
    with pytest.raises(ValueError, match="greedy.*sampled"):
        EvalConfig(protocol="beam")
