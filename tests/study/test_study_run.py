"""`harness study` end to end on a tiny two-arm study: runs, tags, resumes; then `harness
compare` reads it by study file and by MLflow experiment. Unmatched studies are refused."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.conftest import ROOT

TINY_ARM = """\
recipe_version: 1
name: tiny
model: {stp_layers: 2, d_model: 32, n_heads: 2, n_kv_heads: 1, ffn_hidden: 64, vocab_size: 320, seq_len: 32}
objective: {kind: stp}
data: {source: {kind: stdlib, max_files: 30}, decontaminate: {enabled: false}}
train: {steps: 4, global_batch_size: 4, micro_batch_size: 2, num_threads: 1, eval_every: 2, eval_batches: 2,
        checkpoint_every: 4, optimizer: {lr: 0.01}, schedule: {warmup_steps: 1}}
track: {experiment: tiny-study}
eval: {enabled: false}
"""
TINY_STUDY = """\
study_version: 1
name: tiny
baseline: stp
matching: {rule: flops, tolerance: 0.5}
arms:
  stp: {recipe: arm.yaml}
  ds: {recipe: arm.yaml, overrides: {name: tiny_ds, objective: {kind: deepseek, depth: 1}}}
  top: {recipe: arm.yaml, overrides: {name: tiny_top, objective: {kind: top, window: 4}}}
"""


@pytest.fixture
def tiny_study(write):
    write("arm.yaml", TINY_ARM)
    return write("study.yaml", TINY_STUDY)


def test_unmatched_study_is_refused(cli, tmp_path):
    result = cli("study", ROOT / "tests" / "fixtures" / "mismatched_study.yaml", "--runs", tmp_path / "runs")
    assert result.exit_code == 2 and "not matched" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_slurm_options_need_emit_jobs(cli, tiny_study):
    result = cli("study", tiny_study, "--nodes", "2")
    assert result.exit_code == 2 and "--emit-jobs" in result.stderr


def test_emit_jobs_writes_one_tagged_job_per_arm(cli, tiny_study, tmp_path):
    result = cli("study", tiny_study, "--emit-jobs", "--nodes", "1", "--gpus-per-node", "1", "--out", tmp_path / "jobs")
    assert result.exit_code == 0, result.output + result.stderr
    recipes = sorted((tmp_path / "jobs").rglob("recipe.yaml"))
    assert len(recipes) == 3 and len(list((tmp_path / "jobs").rglob("job.sbatch"))) == 3
    tags = [yaml.safe_load(p.read_text())["track"]["tags"] for p in recipes]
    assert sorted(t["arm"] for t in tags) == ["ds", "stp", "top"] and {t["study"] for t in tags} == {"tiny"}


@pytest.mark.slow
def test_tiny_study_runs_resumes_and_compares(cli, tiny_study, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    # Its own MLflow store: other tests log a study also named "tiny" (with a twin control) to the
    # session's store, and `compare --experiment` below must see this study's runs alone.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    runs = tmp_path / "runs"
    # The baseline's training already exists from a plain `harness run`: the study reuses it.
    alone = cli("run", tiny_study.parent / "arm.yaml", "--runs", runs)
    assert alone.exit_code == 0, alone.output + alone.stderr
    (stp_dir,) = runs.iterdir()
    stp_state = json.loads((stp_dir / "track" / "state.json").read_text())
    metrics = (stp_dir / "track" / "metrics.jsonl").read_text()

    first = cli("study", tiny_study, "--runs", runs)
    assert first.exit_code == 0, first.output + first.stderr
    assert first.output.count(" ran ") == 2 and "already finished" in first.output
    dirs = {p.name.split("-")[0]: p for p in runs.iterdir()}
    assert set(dirs) == {"tiny", "tiny_ds", "tiny_top"} and dirs["tiny"] == stp_dir
    assert (stp_dir / "track" / "metrics.jsonl").read_text() == metrics  # not retrained
    client = MlflowClient()
    for arm, run_dir in (("stp", stp_dir), ("ds", dirs["tiny_ds"])):
        state = json.loads((run_dir / "track" / "state.json").read_text())
        tags = client.get_run(state["run_id"]).data.tags
        assert (tags["study"], tags["arm"], tags["seed"]) == ("tiny", arm, "0")
        assert tags["harness.run_dir"] == str(run_dir.resolve())
    assert json.loads((stp_dir / "track" / "state.json").read_text())["run_id"] == stp_state["run_id"]

    # Resume: the finished arm skips every stage; the removed one runs again.
    shutil.rmtree(dirs["tiny_ds"])
    second = cli("study", tiny_study, "--runs", runs)
    assert second.exit_code == 0, second.output + second.stderr
    assert "already finished" in second.output and second.output.count(" ran ") == 1
    assert second.stderr.count("inputs unchanged, skipped") >= 5  # stp: plan, train, export, evaluate, track
    assert (stp_dir / "track" / "metrics.jsonl").read_text() == metrics
    assert "harness compare" in second.output

    out = tmp_path / "results"
    compared = cli("compare", tiny_study, "--runs", runs, "--out", out)
    assert compared.exit_code == 0, compared.output + compared.stderr
    document = json.loads((out / "comparison.json").read_text())
    assert [a["arm"] for a in document["arms"]] == ["stp", "ds", "top"] and document["study"] == "tiny"
    assert document["arms"][1]["objective"] == "deepseek D=1" and document["arms"][1]["val_loss"] > 0
    # TOP: trained, exported, evaluated; in the late-vs-early verdicts, not in Meta vs DeepSeek;
    # its paper is listed beneath the published rows with the reason no figure is entered.
    top = document["arms"][2]
    assert top["objective"] == "top W=4" and top["val_loss"] > 0 and "val_loss" in top["gains"]
    assert [v["arms"] for v in document["verdicts"] if v["claim"].startswith("blog claim 2")] == \
        ["ds vs stp", "top vs stp"]
    assert [n["method"] for n in document["not_entered"]] == ["top"]
    assert "Zuhri, Fuadi and Aji 2025" in (out / "comparison.md").read_text()
    assert (out / "report.html").is_file() and (out / "plots" / "val_loss.svg").is_file()
    by_experiment = cli("compare", "--experiment", "tiny-study", "--study", "tiny", "--out", tmp_path / "again")
    assert by_experiment.exit_code == 0, by_experiment.output + by_experiment.stderr
    assert json.loads((tmp_path / "again" / "comparison.json").read_text())["arms"] == document["arms"]


PROTOCOL_STUDY = """\
study_version: 1
name: proto
baseline: stp
matching: {rule: tokens, tolerance: 0.2}  # 4 steps: whole steps cannot match FLOPs closer
seeds: [0, 1]
lr_sweep: {grid: [0.003, 0.01], seed: 1000, extend: 0}
views: {params: {}, flops: {seeds: [0]}}
arms:
  stp: {recipe: arm.yaml}
  meta: {recipe: arm.yaml, overrides: {name: tiny_meta, objective: {kind: meta, n: 2}}}
  twin: {recipe: arm.yaml, control_of: stp, seed_offset: 100}
"""


@pytest.mark.slow
def test_protocol_study_sweeps_runs_views_and_compares(cli, write, tmp_path):
    """The whole protocol on a tiny study: sweep, choice, primary runs at the chosen rates, the
    flops view, the control; compare reports all of it."""
    write("arm.yaml", TINY_ARM.replace("checkpoint_every: 4", "checkpoint_every: 2, keep_checkpoints: 2").replace(
        "eval: {enabled: false}", "eval: {enabled: false, trajectory: true, canonical_nll: false, analysis_batches: 2}"))
    study = write("proto.yaml", PROTOCOL_STUDY)
    runs = tmp_path / "runs"
    result = cli("study", study, "--runs", runs)
    assert result.exit_code == 0, result.output + result.stderr
    assert "learning rates chosen by validation loss: stp " in " ".join(result.stderr.split())
    # 4 sweep points (on seed 1000, which no arm reports) + 6 primary runs + 1 flops-view run
    assert len(list(runs.glob("*/stages.json"))) == 4 + 6 + 1
    out = tmp_path / "results"
    compared = cli("compare", study, "--runs", runs, "--out", out)
    assert compared.exit_code == 0, compared.output + compared.stderr
    document = json.loads((out / "comparison.json").read_text())
    protocol = document["protocol"]
    assert protocol["matching"]["rule"] == "tokens" and set(protocol["sweep"]["chosen"]) == {"stp", "meta"}
    assert len(protocol["sweep"]["points"]) == 4
    views = {(v["view"], v["arm"]) for v in protocol["views"]}
    assert views == {("params", "meta"), ("flops", "meta")}
    assert set(protocol["references"]) == {"unigram", "bigram", "skip_bigram"}
    arms = {a["arm"]: a for a in document["arms"]}
    assert arms["twin"]["control_of"] == "stp" and arms["twin"]["seeds"] == [100, 101]
    controls = [v for v in document["verdicts"] if v["claim"].startswith("negative control")]
    assert controls and all(v["arms"].startswith("twin vs stp") for v in controls)
    md = (out / "comparison.md").read_text()
    assert "matching rule **tokens**" in md and "Learning-rate sweep" in md and "Secondary views" in md


@pytest.mark.slow
def test_workers_run_the_same_runs_with_the_same_numbers(cli, tiny_study, tmp_path):
    """`--workers 2` changes the schedule only: the same run directories, the same losses
    (bit for bit: one thread per run), every run tagged and finished."""
    from harness.study.runner import finished

    results = {}
    for workers in (1, 2):
        runs = tmp_path / f"runs{workers}"
        outcome = cli("study", tiny_study, "--runs", runs, "--workers", workers)
        assert outcome.exit_code == 0, outcome.output + outcome.stderr
        assert outcome.output.count(" ran ") == 3
        assert all(finished(p) for p in runs.iterdir())
        results[workers] = {p.name: json.loads((p / "eval" / "summary.json").read_text())["val"]
                            for p in runs.iterdir()}
    assert results[1] == results[2] and len(results[2]) == 3


def test_workers_are_refused_under_a_launcher(cli, tiny_study, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = cli("study", tiny_study, "--runs", tmp_path / "runs", "--workers", "2")
    assert result.exit_code == 2 and "--workers" in result.stderr and not (tmp_path / "runs").exists()
