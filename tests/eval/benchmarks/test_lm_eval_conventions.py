"""lm-eval's conventions: its own results and samples files beside ours, `--include-path` in
`harness eval`, and `lm_eval --include_path <our tasks>` scoring a harness export directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.eval.benchmarks.lmeval import tasks_dir

USER_TASK = """\
task: {name}
custom_dataset: !function utils.data
output_type: generate_until
test_split: test
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: !function utils.nonempty
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""
USER_UTILS = """\
def data(**_):
    import datasets
    rows = [{"q": "def f(x):", "a": "x"}, {"q": "import os", "a": "os"}]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def nonempty(references, predictions):
    return {"nonempty": float(bool(predictions[0]))}
"""


def _user_tasks(root: Path, name: str = "my_task") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.yaml").write_text(USER_TASK.format(name=name))
    (root / "utils.py").write_text(USER_UTILS)
    return root


def test_lm_eval_files_beside_ours(cli, tmp_path, tiny_model, default_sandbox, monkeypatch):
    """Done-when: lm-eval's results JSON (versions, git_hash, task hashes) and its samples."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "eval"
    result = cli("eval", tiny_model, "--tasks", "humaneval", "--limit", "2", "--max-gen-toks", "8",
                 "--batch-size", "2", "--threads", "1", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["torch_threads"] == 1
    results = list((out / "lm_eval" / "greedy").rglob("results_*.json"))
    assert len(results) == 1
    theirs = json.loads(results[0].read_text())
    assert theirs["versions"]["harness_humaneval"] == 1.0 and "git_hash" in theirs
    assert set(theirs["task_hashes"]) == {"harness_humaneval"} and theirs["n-samples"]["harness_humaneval"]["effective"] == 2
    samples = list((out / "lm_eval" / "greedy").rglob("samples_harness_humaneval_*.jsonl"))
    assert len(samples) == 1 and len(samples[0].read_text().splitlines()) == 2
    ours = json.loads((out / "lm_eval_greedy.json").read_text())
    assert ours["task_hashes"] == theirs["task_hashes"]


def test_include_path_adds_tasks(cli, tmp_path, tiny_model, default_sandbox, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tasks = _user_tasks(tmp_path / "tasks")
    out = tmp_path / "eval"
    result = cli("eval", tiny_model, "--include-path", tasks, "--tasks", "my_task", "--batch-size", "2", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["my_task/nonempty_none"] in (0.0, 0.5, 1.0) and summary["included_tasks"] == "my_task"
    assert not any(key.startswith("humaneval/") for key in summary)  # only what was asked
    assert json.loads((out / "lm_eval_included.json").read_text())["versions"]["my_task"] == 2.0


def test_unknown_included_task_is_one_line(cli, tmp_path, tiny_model):
    tasks = _user_tasks(tmp_path / "tasks")
    result = cli("eval", tiny_model, "--include-path", tasks, "--tasks", "my_tsak", "--unsafe-no-sandbox")
    assert result.exit_code != 0
    assert "unknown task my_tsak" in result.output and "did you mean my_task" in result.output
    assert "Traceback" not in result.output


def test_included_task_that_executes_code_is_refused(cli, tmp_path, tiny_model):
    tasks = _user_tasks(tmp_path / "tasks", "risky")
    (tasks / "risky.yaml").write_text((tasks / "risky.yaml").read_text() + "unsafe_code: true\n")
    result = cli("eval", tiny_model, "--include-path", tasks, "--tasks", "risky", "--unsafe-no-sandbox")
    assert result.exit_code != 0 and "executes code (unsafe_code)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_lm_eval_cli_scores_an_export_with_our_tasks(tmp_path, tiny_model, default_sandbox):
    """README's command: stock `lm_eval` on a harness export, our task directory, offline."""
    import torch

    from harness.model.config import TrunkConfig
    from harness.model.export import export_hf
    from harness.model.mtp_model import build_model
    from harness.model.objectives.deepseek import DeepSeekConfig

    torch.manual_seed(0)
    trunk = TrunkConfig(stp_layers=2, d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64, vocab_size=512, seq_len=64)
    export = export_hf(build_model(trunk, DeepSeekConfig(depth=1)), tmp_path / "export", tiny_model)
    command = [
        str(Path(sys.executable).with_name("lm_eval")), "--model", "hf",
        "--model_args", f"pretrained={export},dtype=float32", "--device", "cpu", "--batch_size", "2",
        "--include_path", str(tasks_dir()), "--tasks", "harness_humaneval,harness_mbpp",
        "--gen_kwargs", "max_gen_toks=16", "--limit", "2", "--confirm_run_unsafe_code",
        "--output_path", str(tmp_path / "out"), "--log_samples",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    for task in ("harness_humaneval", "harness_mbpp"):
        assert 0.0 <= results["results"][task]["pass@1,execute"] <= 1.0
    assert "harness_mbpp" in textwrap.dedent(done.stdout)


def test_lm_eval_repeats_nothing_the_summary_already_counts(caplog):
    """A left-truncated prompt is counted once in `<task>/truncated_prompts`; lm-eval's warning per
    batch is dropped. Any other lm-eval warning still reaches the log."""
    import logging

    from harness.eval.benchmarks.lmeval import quiet_lm_eval

    quiet_lm_eval()
    quiet_lm_eval()  # idempotent: one filter per logger
    hf = logging.getLogger("lm_eval.models.huggingface")
    assert len(hf.filters) == 1
    with caplog.at_level(logging.WARNING):
        hf.warning("Left truncation applied. Original sequence length was 900, truncating to last 192 tokens.")
        logging.getLogger("lm_eval.api.task").warning("x: Custom kwargs can be passed to `--metadata` in console")
        hf.warning("something else went wrong")
    assert [r.getMessage() for r in caplog.records] == ["something else went wrong"]


def test_lm_eval_records_no_commit_of_the_directory_the_user_stands_in(tmp_path, monkeypatch, capfd):
    import lm_eval.evaluator

    from harness.eval.benchmarks.lmeval import quiet_lm_eval

    monkeypatch.chdir(tmp_path)  # not a git repository: git would print "fatal: ..."
    quiet_lm_eval()
    assert lm_eval.evaluator.get_git_commit_hash() is None
    assert "fatal" not in capfd.readouterr().err
