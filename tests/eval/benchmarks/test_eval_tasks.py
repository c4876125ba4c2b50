"""The packaged lm-eval tasks: stock prompts and stop sequences, packaged data, offline loading."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import lm_eval
import pytest
import yaml

from harness.eval.benchmarks.lmeval import load_tasks, pass_at_k_metric, task_manager, tasks_dir

STOCK = Path(lm_eval.__file__).parent / "tasks"  # lm-eval 0.4.13's own task files


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix} {loader.construct_scalar(node)}")


def read(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)


COPIED = ("output_type", "test_split", "doc_to_text", "doc_to_target", "num_fewshot", "unsafe_code")


@pytest.mark.parametrize(
    ("ours", "stock", "extra"),
    [
        ("harness_humaneval.yaml", "humaneval/humaneval.yaml", ("repeats",)),
        ("harness_mbpp.yaml", "mbpp/mbpp.yaml", ("target_delimiter",)),
    ],
)
def test_prompts_and_stops_are_lm_evals(ours, stock, extra):
    mine, theirs = read(tasks_dir() / ours), read(STOCK / stock)
    for key in (*COPIED, *extra):
        assert mine[key] == theirs[key], key
    assert mine["generation_kwargs"] == theirs["generation_kwargs"]
    assert mine["metadata"]["version"] == theirs["metadata"]["version"]


def test_sampled_humaneval_keeps_the_stock_sampling_settings():
    mine, theirs = read(tasks_dir() / "harness_humaneval_sampled.yaml"), read(STOCK / "humaneval/humaneval_64.yaml")
    assert mine["generation_kwargs"] == theirs["generation_kwargs"]


def test_mbpp_fewshot_examples_equal_lm_evals():
    spec = importlib.util.spec_from_file_location("harness_task_hooks", tasks_dir() / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    tree = ast.parse((STOCK / "mbpp/utils.py").read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "list_fewshot_samples")
    stock = ast.literal_eval(function.body[-1].value)
    assert hooks.mbpp_fewshot() == stock


def test_tasks_load_offline_from_package_data(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    manager = task_manager()
    assert sorted(manager.all_tasks) == [
        "harness_humaneval", "harness_humaneval_sampled", "harness_mbpp", "harness_mbpp_sampled"
    ]  # fmt: skip
    tasks = load_tasks(["harness_humaneval", "harness_mbpp"])
    assert len(tasks["harness_humaneval"].test_docs()) == 164
    mbpp = tasks["harness_mbpp"]
    assert [d["task_id"] for d in mbpp.test_docs()][:2] == [11, 12] and len(mbpp.test_docs()) == 500
    mbpp.build_all_requests(limit=1)
    prompt = mbpp.instances[0].arguments[0]
    assert prompt.startswith("You are an expert Python programmer, and here is your task: Write a function to find the similar")
    assert prompt.count("[DONE]") == 3 and prompt.endswith("[BEGIN]\n")
    assert "remove_Occ" in prompt  # the test problem (task 11) comes last


def test_metric_scores_a_problem_from_its_rows():
    rows = [{"status": "passed"}, {"status": "failed"}, {"status": "timeout"}, {"status": "failed"}]
    assert pass_at_k_metric([rows], [1, 2, 10]) == pytest.approx({"pass@1": 0.25, "pass@2": 0.5})
