"""`harness compare` on synthetic run directories: the table's numbers, the refusal of runs
that are not comparable (unless forced), the published rows and the written files."""

from __future__ import annotations

import csv
import html
import json

import numpy as np
import pytest
from scipy import stats

from harness.errors import HarnessError
from harness.report.collect import load_run
from harness.report.compare import find_runs, run_compare
from harness.report.published import all_reported
from tests.report.report_helpers import make_run, study_runs


def _compare(dirs, out, baseline=None, force=False):
    found = find_runs(tuple(str(d) for d in dirs), None, None, out.parent, force)
    return run_compare(found, baseline=baseline, out_dir=out, force=force, log=False, n_resamples=2000)


def test_rows_carry_costs_scores_and_paired_gains(tmp_path):
    dirs = study_runs(tmp_path / "runs")
    result = _compare(dirs, tmp_path / "out")
    rows = {row.arm: row for row in result.rows}
    assert list(rows) == ["stp", "meta_n2", "deepseek_n2"]  # baseline first (inferred: the only STP arm)
    assert rows["stp"].gains == {}
    meta = rows["meta_n2"]
    assert (meta.objective, meta.params, meta.targets_per_step) == ("meta n=2", 2_200_000, 8192)
    # The gain is paired by seed over the same problems, in percentage points: its mean is the
    # difference of solved counts, its interval scipy's paired t test of the per-seed means (an
    # independent implementation), its data-sampling interval beside it.
    def solved(run_dir):
        found = load_run(run_dir).outcomes("humaneval/pass_at_1")
        return 100 * np.mean([found[i] for i in sorted(found, key=str)])

    b, a = [solved(d) for d in dirs[:3]], [solved(d) for d in dirs[3:6]]
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    gain = meta.gains["humaneval/pass_at_1"]
    assert gain["mean"] == pytest.approx(np.mean(a) - np.mean(b))
    assert (gain["low"], gain["high"]) == pytest.approx((ci.low, ci.high))
    assert gain["data_low"] <= gain["mean"] <= gain["data_high"] and gain["n"] == 164 and gain["n_seeds"] == [3, 3]
    assert gain["excludes_zero"] == ((gain["low"] > 0 and gain["data_low"] > 0) or (gain["high"] < 0 and gain["data_high"] < 0))
    assert meta.metrics["humaneval/pass_at_1"] == pytest.approx(np.mean(a))
    # Held-out loss: paired over the fixed rows, lower for the MTP arms here.
    assert meta.gains["val_loss"]["high"] < 0 and meta.gains["val_loss"]["excludes_zero"]
    assert meta.acceptance == {"2": {"agree_greedy": pytest.approx(0.4), "correct": pytest.approx(0.3)}}
    assert meta.speculative["speedup"] == pytest.approx(1.2)


def test_prompts_cut_to_the_trained_context_are_a_column(tmp_path):
    from tests.report.report_helpers import EVAL_FACTS

    facts = {**EVAL_FACTS, "prompt_budget_mbpp": 128, "mbpp/truncated_prompts": 497, "humaneval/truncated_prompts": 60}
    outcomes = {"humaneval": [0, 1, 0], "mbpp": [1, 0, 0]}
    dirs = [make_run(tmp_path / "runs", arm, kind, outcomes=outcomes, eval_facts=facts)
            for arm, kind in (("stp", "stp"), ("deepseek_n2", "deepseek"))]  # fmt: skip
    result = _compare(dirs, tmp_path / "out")
    assert result.rows[1].truncated == {"humaneval": 60, "mbpp": 497}
    assert "| HumanEval 60, MBPP 497 |" in (result.out_dir / "comparison.md").read_text()


def test_outputs_are_written_and_repeatable(tmp_path):
    dirs = study_runs(tmp_path / "runs")
    first = _compare(dirs, tmp_path / "out")
    names = {p.relative_to(first.out_dir).as_posix() for p in first.out_dir.rglob("*") if p.is_file()}
    assert {"comparison.json", "comparison.md", "comparison.csv", "report.html", "plots/val_loss.svg",
            "plots/val_loss.png", "plots/per_position_ratio.svg", "plots/gains.svg", "plots/acceptance.png"} <= names
    snapshot = {n: (first.out_dir / n).read_bytes() for n in names}
    _compare(dirs, tmp_path / "out")
    assert {n: (first.out_dir / n).read_bytes() for n in names} == snapshot  # no timestamps, seeded bootstrap
    document = json.loads((first.out_dir / "comparison.json").read_text())
    assert document["baseline"] == "stp" and [a["arm"] for a in document["arms"]] == ["stp", "meta_n2", "deepseek_n2"]
    with open(first.out_dir / "comparison.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["arm"] for r in table] == ["stp", "meta_n2", "deepseek_n2"]
    assert float(table[1]["gain:humaneval/pass_at_1:mean"]) == pytest.approx(first.rows[1].gains["humaneval/pass_at_1"]["mean"])


def test_reported_rows_and_flags_are_in_every_output(tmp_path):
    result = _compare(study_runs(tmp_path / "runs"), tmp_path / "out")
    markdown = (result.out_dir / "comparison.md").read_text()
    page = html.unescape((result.out_dir / "report.html").read_text())
    document = json.loads((result.out_dir / "comparison.json").read_text())
    assert len(document["reported"]) == len(all_reported())
    for r in all_reported():
        assert f"| {r.gain:+.1f} |" in markdown
        if r.flag:
            assert r.flag in markdown and r.flag in page
    assert "Table 1 gives -0.1" in markdown and "Gloeckle et al. 2024" in markdown and "DeepSeek-V3" in markdown


@pytest.mark.parametrize("field,value,what", [
    ("manifest", "x" * 64, "data manifest differs"),
    ("tokenizer", "y" * 64, "tokenizer differs"),
    ("eval_facts", {"protocol": "sampled"}, "eval protocol differs"),
    ("eval_facts", {"prompt_budget_mbpp": 64}, "eval prompt_budget_mbpp differs"),
    ("per_position", np.ones((4, 8)), "held-out rows"),
])
def test_not_comparable_runs_are_refused_unless_forced(tmp_path, field, value, what):
    rng = np.random.default_rng(0)
    outcomes = {"humaneval": (rng.random(20) < 0.5).astype(int)}
    base = make_run(tmp_path / "runs", "stp", "stp", outcomes=outcomes, per_position=np.ones((4, 16)))
    if field == "eval_facts":
        from tests.report.report_helpers import EVAL_FACTS

        value = {**EVAL_FACTS, **value}
    kwargs = {"per_position": np.ones((4, 16)), field: value}
    other = make_run(tmp_path / "runs", "deepseek_n2", "deepseek", outcomes=outcomes, **kwargs)
    with pytest.raises(HarnessError, match=f"not comparable: .*{what}") as err:
        _compare([base, other], tmp_path / "out")
    assert "--force" in err.value.fix
    forced = _compare([base, other], tmp_path / "out", force=True)
    assert any(what in p for p in forced.document["not_comparable"])
    assert "Compared with --force although" in (forced.out_dir / "report.html").read_text()


def test_a_run_without_per_position_losses_is_still_comparable(tmp_path):
    base = make_run(tmp_path / "runs", "stp", "stp", per_position=np.ones((4, 16)))
    other = make_run(tmp_path / "runs", "deepseek_n2", "deepseek")
    result = _compare([base, other], tmp_path / "out")
    assert result.document["not_comparable"] == [] and result.verdicts[0].verdict == "not testable"


def test_cli_refuses_then_forces(tmp_path, cli):
    base = make_run(tmp_path / "runs", "stp", "stp", outcomes={"mbpp": [1, 0, 1, 0]})
    other = make_run(tmp_path / "runs", "meta_n2", "meta", outcomes={"mbpp": [1, 1, 1, 0]}, manifest="z" * 64)
    refused = cli("compare", base, other, "--out", tmp_path / "out", "--no-mlflow")
    assert refused.exit_code == 2 and "not comparable" in refused.stderr and "data manifest" in refused.stderr
    assert not (tmp_path / "out").exists()
    forced = cli("compare", base, other, "--out", tmp_path / "out", "--no-mlflow", "--force")
    assert forced.exit_code == 0, forced.output + forced.stderr
    # A two-run comparison prints the answer, not the published rows (they are asked for).
    assert "forced:" in forced.output and "Table 1 gives -0.1" not in forced.output
    assert len(forced.output.splitlines()) < 40
    published = cli("compare", base, other, "--out", tmp_path / "out", "--no-mlflow", "--force", "--published")
    assert "Table 1 gives -0.1" in published.output
    assert (tmp_path / "out" / "report.html").is_file()


def test_baseline_must_be_known_and_unfinished_runs_are_refused(tmp_path):
    a = make_run(tmp_path / "runs", "meta_n2", "meta")
    b = make_run(tmp_path / "runs", "deepseek_n2", "deepseek")
    with pytest.raises(HarnessError, match="cannot tell the baseline"):
        _compare([a, b], tmp_path / "out")
    assert _compare([a, b], tmp_path / "out", baseline="meta_n2").rows[0].arm == "meta_n2"
    stages = json.loads((b / "stages.json").read_text())
    del stages["evaluate"]
    (b / "stages.json").write_text(json.dumps(stages))
    with pytest.raises(HarnessError, match="has not finished"):
        _compare([a, b], tmp_path / "out", baseline="meta_n2")


def test_several_seeds_pool_into_one_row(tmp_path):
    rng = np.random.default_rng(2)
    dirs = []
    for seed in (0, 1):
        rows = 3 + rng.random((16, 8))
        dirs.append(make_run(tmp_path / "runs", "stp", "stp", seed=seed, per_position=rows,
                             outcomes={"mbpp": (rng.random(50) < 0.3).astype(int)}))
        dirs.append(make_run(tmp_path / "runs", "deepseek_n2", "deepseek", seed=seed, per_position=rows * 0.9,
                             outcomes={"mbpp": (rng.random(50) < 0.4).astype(int)}))
    rows = _compare(dirs, tmp_path / "out").rows
    assert rows[1].seeds == [0, 1] and rows[1].gains["mbpp/pass_at_1"]["n_seeds"] == [2, 2]
    assert rows[1].gains["val_loss"]["high"] < 0


def test_a_task_no_arm_solves_is_not_shown_as_a_precise_zero(tmp_path):
    dirs = []
    for seed in (0, 1):
        solved = [0, 1] * 14 + [seed, 0]
        dirs += [make_run(tmp_path / "runs", "stp", "stp", seed=seed, outcomes={"mbpp": [0] * 30, "humaneval": solved}),
                 make_run(tmp_path / "runs", "meta_n2", "meta", seed=seed,
                          outcomes={"mbpp": [0] * 30, "humaneval": [1] * (seed + 3) + solved[seed + 3:]})]
    result = _compare(dirs, tmp_path / "out")
    gains = result.rows[1].gains
    assert gains["mbpp/pass_at_1"]["note"] == "neither arm solves a problem" and "note" not in gains["humaneval/pass_at_1"]
    markdown = (result.out_dir / "comparison.md").read_text()
    assert "| neither arm solves a problem |" in markdown and "+0.0 [+0.0, +0.0]" not in markdown


def test_one_seed_per_arm_gives_gains_without_a_verdict(tmp_path):
    base = make_run(tmp_path / "runs", "stp", "stp", outcomes={"humaneval": [0, 1] * 15}, per_position=np.ones((4, 16)))
    other = make_run(tmp_path / "runs", "meta_n2", "meta", outcomes={"humaneval": [1] * 30},
                     per_position=np.full((4, 16), 0.5))
    result = _compare([base, other], tmp_path / "out")
    gain = result.rows[1].gains["humaneval/pass_at_1"]
    assert gain["note"] == "not testable: one seed" and gain["low"] is None and not gain["excludes_zero"]
    assert gain["data_low"] > 0  # the problems alone would have "shown" it
    assert "not testable: one seed (+50)" in (result.out_dir / "comparison.md").read_text()
