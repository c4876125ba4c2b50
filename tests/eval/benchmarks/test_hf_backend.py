"""The `hf` backend: completions byte-identical to lm-eval's own HF backend, rows stopped one
by one, prompts cut to a budget per task and counted, and lm-eval's vllm arguments."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from harness.eval.benchmarks.context import prompt_budget, trained_context
from harness.eval.benchmarks.stops import RowStops, overlapping
from harness.eval.config import EvalConfig
from harness.threads import torch_threads


def _requests(limit: int, max_gen_toks: int) -> list:
    from harness.eval.benchmarks.lmeval import load_tasks

    instances = []
    for task in load_tasks(["harness_humaneval", "harness_mbpp"]).values():
        task.set_config("generation_kwargs", {"max_gen_toks": max_gen_toks}, update=True)
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        instances += task.instances
    return instances


def _lms(model_dir: Path, **ours):
    import lm_eval.models  # noqa: F401
    from lm_eval.models.huggingface import HFLM

    from harness.eval.benchmarks.hf_backend import HarnessHFLM

    common = dict(pretrained=str(model_dir), device="cpu", batch_size=4, dtype="float32")
    return HFLM(**common, max_length=512), HarnessHFLM(**common, **({"max_length": 512} | ours))


def _varied_requests(count: int, max_gen_toks: int) -> list:
    """HumanEval prompts followed by a different part of their solution each: a model this
    small continues every plain prompt alike, but these make it stop at different strings,
    at different steps, or not at all (lengths vary too, so rows are padded)."""
    from lm_eval.api.instance import Instance

    from harness.data import benchmarks

    until = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
    requests = []
    for i, problem in enumerate(benchmarks.humaneval()[:count]):
        solution = problem["canonical_solution"]
        context = problem["prompt"] + solution[: (i * 37) % max(1, len(solution))]
        kwargs = {"until": until, "max_gen_toks": max_gen_toks, "do_sample": False}
        requests.append(Instance("generate_until", {}, (context, kwargs), i, ("varied", i, 1)))
    return requests


def test_greedy_completions_are_lm_eval_hf_ones(code_model):
    """Done-when: identical greedy outputs, on a model whose rows stop at different places."""
    requests = _varied_requests(32, max_gen_toks=48) + _requests(limit=4, max_gen_toks=48)
    theirs, ours = _lms(code_model)
    with torch_threads(1):
        expected = theirs.generate_until(requests)
        got = ours.generate_until(requests)
    assert got == expected
    assert len(set(expected)) > 8  # not one degenerate completion
    assert any(s in text for text in expected for s in ("return", "\n"))  # rows that never stopped
    assert any(idle > 0 for _, _, idle in ours.batches)  # rows stopped while their batch went on


def test_overlap_needs_a_margin():
    assert not overlapping(["\nclass", "\ndef", "\n#", "\nif", "\nprint", "<|endoftext|>"])
    assert not overlapping(["[DONE]", "<|endoftext|>"])
    assert overlapping(["ab", "bc"])  # "abc": lm-eval cuts at "ab" first, then "bc" no longer fits
    assert overlapping(["\n", "x\ny"])  # one contains the other


class _CharTokenizer:
    """One character per token id (ord), so a test can write the generated text directly."""

    clean_up_tokenization_spaces = False

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids) if i != 0)

    def batch_decode(self, rows, skip_special_tokens=True):
        return [self.decode(row) for row in rows]


def _ids(*texts: str, prompt: str = "P"):
    import torch

    width = max(map(len, texts))
    return torch.tensor([[ord(c) for c in prompt + t.ljust(width, "\x00")] for t in texts])


def test_rows_stop_one_by_one():
    stops = RowStops(_CharTokenizer(), ["\ndef", "\nclass"], prompt_length=1, batch_size=3, eos_ids=[ord("$")])
    assert stops(_ids("x = 1", "y", "z"), None).tolist() == [False, False, False]
    assert stops(_ids("x = 1\ndef", "y\nclas", "zzzzzzzz$"), None).tolist() == [True, False, True]  # $: EOS
    assert stops.finished_at == [9, None, 9]
    assert stops(_ids("x = 1\ndef ", "y\nclass", "zzzzzzzz$\x00"), None).tolist() == [True, True, True]


def test_steps_whose_tokens_cannot_complete_a_stop_decode_nothing():
    import torch

    tokenizer = _CharTokenizer()
    completing = torch.tensor([chr(i) in "fs" for i in range(128)])  # last characters of "\ndef", "\nclass"
    stops = RowStops(tokenizer, ["\ndef", "\nclass"], prompt_length=1, batch_size=2, completing=completing)
    decoded = []
    tokenizer.batch_decode = lambda rows, **_: decoded.append(len(rows)) or [_CharTokenizer().decode(r) for r in rows]
    assert stops(_ids("x\nde", "y = 1"), None).tolist() == [False, False] and decoded == []
    assert stops(_ids("x\ndef", "y = 1"), None).tolist() == [True, False] and decoded == [1]


def test_overlapping_stops_wait_for_their_margin():
    stops = RowStops(_CharTokenizer(), ["ab", "bc"], prompt_length=1, batch_size=1)
    assert stops.margin == 2
    assert stops(_ids("xab"), None).tolist() == [False]  # a "c" next would make lm-eval cut at "ab" anyway,
    assert stops(_ids("xabq"), None).tolist() == [False]  # but the cut is only settled 2 characters on
    assert stops(_ids("xabqq"), None).tolist() == [True]


def test_prompt_budget_rule():
    assert prompt_budget(4096, 1024) == 3072  # room to generate inside the trained context
    assert prompt_budget(256, 128) == 128
    assert prompt_budget(256, 1024) == 128  # at least half the context for the prompt


def test_trained_context_from_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 256}))
    assert trained_context(tmp_path) == 256
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 512}}))
    assert trained_context(tmp_path) == 512
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 1024}))
    assert trained_context(tmp_path) == 1024


def test_prompts_cut_to_the_trained_context_are_counted(code_model):
    """MBPP's 3-shot prompts exceed a 64-token budget; the counts are distinct prompts."""
    requests = _requests(limit=3, max_gen_toks=8)
    _, ours = _lms(code_model, max_length=None, context_length=96)
    with torch_threads(1):
        ours.generate_until(requests + requests)  # twice: still 3 prompts per task
    assert ours.budgets == {"harness_humaneval": 88, "harness_mbpp": 88}  # max(96 - 8, 48)
    assert len(ours.prompts["harness_mbpp"]) == 3 and len(ours.truncated["harness_mbpp"]) == 3
    lengths = [len(ours.tok_encode(r.args[0])) for r in requests if r.task_name == "harness_humaneval"]
    assert len(ours.truncated["harness_humaneval"]) == sum(n > 88 for n in lengths)


def _vllm_parameters() -> set[str]:
    """The named parameters of lm-eval's VLLM.__init__, read from its source (vllm is not installed)."""
    import lm_eval

    source = Path(lm_eval.__file__).parent / "models" / "vllm_causallms.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == "VLLM":
            init = next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
            return {a.arg for a in init.args.args + init.args.kwonlyargs} - {"self"}
    raise AssertionError("no VLLM class in lm-eval")


def test_vllm_backend_hands_lm_eval_its_documented_arguments(tmp_path, monkeypatch):
    from lm_eval.api import registry

    from harness.eval.benchmarks import lmeval

    handed = {}

    def fake_get_model(name):
        assert name == "vllm"
        return lambda **kwargs: handed.update(kwargs) or "lm"

    monkeypatch.setattr(registry, "get_model", fake_get_model)
    monkeypatch.setattr(lmeval, "vllm_importable", lambda: True)  # an image with vllm
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    cfg = EvalConfig(backend="vllm", seed=7)
    assert lmeval.load_model(tmp_path, cfg, device="cuda", context=4096) == "lm"
    assert set(handed) <= _vllm_parameters()
    assert handed == {"pretrained": str(tmp_path), "dtype": "bfloat16", "batch_size": "auto", "max_length": 4096,
                      "tensor_parallel_size": 1, "data_parallel_size": 4, "seed": 7}  # fmt: skip


@pytest.mark.parametrize("device, dtype", [("cpu", "float32"), ("cuda:0", "bfloat16")])
def test_the_hf_backend_loads_on_the_evaluation_device_in_its_dtype(tmp_path, monkeypatch, device, dtype):
    from harness.eval.benchmarks import hf_backend, lmeval

    import types

    import transformers

    made = {}

    class Loaded:  # what from_pretrained returns: records where it is moved
        def to(self, where):
            made["moved_to"] = where
            return self

        def eval(self):
            return self

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda path, dtype: made.update(path=path, dtype=dtype) or Loaded())
    monkeypatch.setattr(hf_backend, "HarnessHFLM", lambda **kwargs: made.update(kwargs) or types.SimpleNamespace())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    lm = lmeval.load_model(tmp_path, EvalConfig(), device=device, context=256)
    assert (made["moved_to"], made["dtype"], made["path"]) == (device, getattr(torch, dtype), str(tmp_path))
    assert isinstance(made["pretrained"], Loaded) and lm.pretrained == str(tmp_path)


def test_vllm_where_it_is_not_importable_is_one_line_with_the_fix(tmp_path, monkeypatch):
    from harness.errors import HarnessError
    from harness.eval.benchmarks import lmeval

    monkeypatch.setattr(lmeval, "vllm_importable", lambda: False)
    with pytest.raises(HarnessError) as refused:
        lmeval.load_model(tmp_path, EvalConfig(backend="vllm"), device="cuda", context=4096)
    assert "eval.backend=vllm but vllm is not importable" in str(refused.value)
    assert "eval.backend=hf" in str(refused.value) and "\n" not in str(refused.value)
    lmeval.check_backend(EvalConfig(backend="vllm", enabled=False))  # no generation: nothing to refuse


@pytest.mark.parametrize("value", ["hf", "vllm"])
def test_backend_is_a_recipe_field(value):
    assert EvalConfig(backend=value).backend == value
    with pytest.raises(ValueError):
        EvalConfig(backend="tgi")
