"""The probes in `harness compare`: per-story and per-expression outcomes, gains over the STP arm
of the same size, and the verdict rows (induction at <= 30M, fading with size, polynomial in
and out of distribution), on constructed run directories whose answers are known."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from harness.report.arm_rows import build_rows, group_by_arm
from harness.report.claims import CONTRADICTED, SUPPORTED, UNCLEAR, UNTESTABLE
from harness.report.collect import load_run
from harness.report.compare import Found, run_compare
from harness.report.probe_claims import FADES, INDUCTION, MOST_OOD, POLY, probe_verdicts
from harness.report.probe_outcomes import probe_outcomes
from tests.report.report_helpers import make_run

STORIES, MENTIONS = 60, 5  # every story has 5 scored mentions


def induction_run(root, arm, kind, seed, rate, *, trunk=100_000, baseline=None):
    """A run whose share `rate` of stories gets every mention right (the rest none), so the
    pooled accuracy is `rate` and stories are the unit that varies."""
    tags = {"baseline": baseline} if baseline else {}
    run_dir = make_run(root, arm, kind, seed=seed, tags=tags)
    rng = np.random.default_rng(zlib.crc32(f"{arm}/{seed}".encode()))
    good = set(rng.choice(STORIES, size=round(rate * STORIES), replace=False).tolist())
    rows = [{"task_id": f"story-{s:05d}/{p}", "story": f"story-{s:05d}", "mention": 2 + p, "candidates": 2,
             "correct": s in good, "status": "passed" if s in good else "failed", "sample": 0}
            for s in range(STORIES) for p in range(MENTIONS)]
    _write_probe(run_dir, "induction", rows, {"induction/accuracy": len(good) / STORIES}, trunk)
    return run_dir


def polynomial_run(root, arm, kind, seed, rate_id, rate_ood, n=200):
    run_dir = make_run(root, arm, kind, seed=seed)
    rng = np.random.default_rng(zlib.crc32(f"{arm}/{seed}/poly".encode()))
    rows = []
    for ood, rate in ((False, rate_id), (True, rate_ood)):
        hits = set(rng.choice(n, size=round(rate * n), replace=False).tolist())
        rows += [{"task_id": f"m{3 + 3 * ood:02d}-{i:05d}", "ops": 3 + 3 * ood, "ood": ood, "answer": "1 2 3 4 5",
                  "correct": i in hits, "coefficients_correct": 5 if i in hits else 1,
                  "status": "passed" if i in hits else "failed", "sample": 0} for i in range(n)]
    _write_probe(run_dir, "polynomial", rows, {"polynomial/exact_match_id": rate_id,
                                               "polynomial/exact_match_ood": rate_ood}, 100_000)
    return run_dir


def _write_probe(run_dir, probe, rows, metrics, trunk):
    (run_dir / "eval" / f"{probe}_greedy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    (run_dir / "eval" / "summary.json").write_text(json.dumps({**summary, **metrics}))
    plan = json.loads((run_dir / "plan.json").read_text())
    plan["params"] = {"embedding": 1000, "trunk": trunk, "heads": 0}
    (run_dir / "plan.json").write_text(json.dumps(plan))


def _verdicts(records, baseline, claim):
    groups = group_by_arm(records, baseline)
    return [v for v in probe_verdicts(groups, build_rows(groups, 2000), n_resamples=2000) if v.claim == claim]


def test_story_outcomes_average_to_the_pooled_accuracy(tmp_path):
    run_dir = make_run(tmp_path, "stp", "stp")
    rows = [{"story": "a", "correct": True}, {"story": "a", "correct": False}, {"story": "a", "correct": True},
            {"story": "b", "correct": False}]  # 2 of 4 mentions right, stories of unequal length
    (run_dir / "eval" / "induction_greedy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = probe_outcomes(run_dir, "induction/accuracy")
    assert set(out) == {"a", "b"} and np.mean(list(out.values())) == pytest.approx(0.5)
    assert out["a"] == pytest.approx(2 / 2) and out["b"] == 0.0  # 2 correct / 2 mentions per story on average
    assert probe_outcomes(run_dir, "polynomial/exact_match_id") is None  # no polynomial rows


def test_induction_gain_is_supported_where_mtp_copies_names_and_fades_with_size(tmp_path):
    records = []
    for seed in (0, 1, 2):
        records += [load_run(induction_run(tmp_path, "tiny_stp", "stp", seed, 0.2)),
                    load_run(induction_run(tmp_path, "tiny_meta", "meta", seed, 0.8)),
                    load_run(induction_run(tmp_path, "small_stp", "stp", seed, 0.6, trunk=400_000,
                                           baseline="small_stp")),
                    load_run(induction_run(tmp_path, "small_meta", "meta", seed, 0.6, trunk=400_000,
                                           baseline="small_stp"))]
    found = {v.arms.split(" ")[0]: v for v in _verdicts(records, "tiny_stp", INDUCTION)}
    assert set(found) == {"tiny_meta", "small_meta"}  # the STP arms are baselines, not judged
    assert found["tiny_meta"].verdict == SUPPORTED and found["tiny_meta"].estimate == pytest.approx(60.0)
    assert "vs tiny_stp (100,000 non-embedding params)" in found["tiny_meta"].arms
    assert found["small_meta"].verdict == UNCLEAR and found["small_meta"].estimate == pytest.approx(0.0)
    assert "induction/accuracy: STP 20.0%, arm 80.0%" in found["tiny_meta"].text  # the levels, not only the gain
    (fades,) = _verdicts(records, "tiny_stp", FADES)
    assert fades.arms.startswith("tiny_meta (vs tiny_stp) minus small_meta")  # the smaller model first
    assert fades.verdict == SUPPORTED and fades.estimate == pytest.approx(60.0) and fades.low > 30
    # The table's gains follow the same reference arms: small_meta is measured against small_stp.
    rows = {r.arm: r for r in build_rows(group_by_arm(records, "tiny_stp"), n_resamples=500)}
    assert rows["small_meta"].baseline == "small_stp" and rows["small_stp"].gains == {}
    assert rows["small_meta"].gains["induction/accuracy"]["mean"] == pytest.approx(0.0)
    assert rows["tiny_meta"].gains["induction/accuracy"]["mean"] == pytest.approx(60.0)


def test_an_mtp_arm_worse_at_induction_is_contradicted(tmp_path):
    records = [load_run(induction_run(tmp_path, "stp", "stp", s, 0.7)) for s in (0, 1)]
    records += [load_run(induction_run(tmp_path, "deepseek", "deepseek", s, 0.2)) for s in (0, 1)]
    (v,) = _verdicts(records, "stp", INDUCTION)
    assert v.verdict == CONTRADICTED and v.high < 0 and v.unit == "percentage points"


def test_polynomial_verdicts_in_and_out_of_distribution(tmp_path):
    records = [load_run(polynomial_run(tmp_path, "stp", "stp", s, 0.30, 0.0)) for s in (0, 1)]
    records += [load_run(polynomial_run(tmp_path, "meta", "meta", s, 0.30, 0.10)) for s in (0, 1)]
    groups = group_by_arm(records, "stp")
    by_claim = {v.claim: v for v in probe_verdicts(groups, build_rows(groups, 2000), n_resamples=2000)}
    assert by_claim[POLY["polynomial/exact_match_id"]].verdict == UNCLEAR
    assert by_claim[POLY["polynomial/exact_match_ood"]].verdict == SUPPORTED
    assert by_claim[MOST_OOD].verdict == SUPPORTED and by_claim[MOST_OOD].estimate == pytest.approx(10.0)
    nobody = [load_run(polynomial_run(tmp_path / "z", a, k, 0, 0.3, 0.0)) for a, k in (("stp", "stp"), ("meta", "meta"))]
    groups = group_by_arm(nobody, "stp")
    by_claim = {v.claim: v for v in probe_verdicts(groups, build_rows(groups, 500), n_resamples=500)}
    assert by_claim[POLY["polynomial/exact_match_ood"]].verdict == UNTESTABLE
    assert by_claim[MOST_OOD].verdict == UNTESTABLE


def test_compare_writes_probe_columns_and_verdict_rows(tmp_path):
    records = [load_run(induction_run(tmp_path, "stp", "stp", s, 0.2)) for s in (0, 1)]
    records += [load_run(induction_run(tmp_path, "meta", "meta", s, 0.7)) for s in (0, 1)]
    result = run_compare(Found(records, "probe-syn"), baseline="stp", out_dir=tmp_path / "out", force=False,
                         log=False, n_resamples=500)
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "induction accuracy" in md and INDUCTION in md
    # the paper's claims about the probes this comparison has, in words (plots only: no numbers)
    assert "Published probe claims" in md and "Sec. 4.1, Figure 7" in md and "Sec. 4.2" not in md.split("## Verdicts")[0]
    document = json.loads((tmp_path / "out" / "comparison.json").read_text())
    (row,) = [v for v in document["verdicts"] if v["claim"] == INDUCTION]
    assert row["verdict"] == SUPPORTED and row["estimate"] == pytest.approx(50.0)
    assert "gain:induction/accuracy:mean" in (tmp_path / "out" / "comparison.csv").read_text()
    assert result.rows[1].metrics["induction/accuracy"] == pytest.approx(70.0)
    assert (tmp_path / "out" / "plots" / "probe_gains.svg").is_file()
    assert "polynomial_by_ops" not in {p.stem for p in result.files}  # no polynomial rows, no such figure


def test_polynomial_comparison_draws_exact_match_by_number_of_operations(tmp_path):
    records = []
    for arm, kind in (("stp", "stp"), ("meta", "meta")):
        run_dir = polynomial_run(tmp_path, arm, kind, 0, 0.3, 0.1)
        summary = json.loads((run_dir / "eval" / "summary.json").read_text())
        summary.update({"polynomial/exact_match_m03": 0.3, "polynomial/exact_match_m06": 0.1,
                        "polynomial/train_max_ops": 5, "polynomial/chance": 0.01})
        (run_dir / "eval" / "summary.json").write_text(json.dumps(summary))
        records.append(load_run(run_dir))
    result = run_compare(Found(records, "poly-syn"), baseline="stp", out_dir=tmp_path / "out", force=False,
                         log=False, n_resamples=300)
    stems = {p.stem for p in result.files}
    assert {"polynomial_by_ops", "probe_gains"} <= stems
    assert "polynomial exact match by number of operations" in (tmp_path / "out" / "report.html").read_text().lower()


def test_a_broken_probe_row_is_refused_with_its_place(tmp_path, cli):
    good = [load_run(polynomial_run(tmp_path, a, k, 0, 0.3, 0.1)) for a, k in (("stp", "stp"), ("meta", "meta"))]
    rows_file = good[1].run_dir / "eval" / "polynomial_greedy.jsonl"
    before = rows_file.read_text()
    for bad, why in (('{"task_id": 5}', "missing ood"), ("[1, 2]", "not a JSON object"), ("{oops", "not JSON")):
        rows_file.write_text(before + bad + "\n")
        result = cli("compare", good[0].run_dir, good[1].run_dir, "--baseline", "stp", "--out", tmp_path / "out",
                     "--no-mlflow")
        assert result.exit_code == 2 and "Traceback" not in result.output + result.stderr
        (line,) = [l for l in result.stderr.splitlines() if l.startswith("error:")]
        assert f"line {len(before.splitlines()) + 1}: not a polynomial probe row ({why}" in line and "fix:" in line
    assert rows_file.read_text().startswith(before)  # the record is not rewritten


def _copy_floor(records, floor):
    for r in records:
        r.summary["induction/copy_baseline"] = floor
    return records


def test_induction_gains_below_the_copying_baseline_are_not_testable(tmp_path):
    records = [load_run(induction_run(tmp_path, "stp", "stp", s, 0.2)) for s in (0, 1, 2)]
    records += [load_run(induction_run(tmp_path, "meta", "meta", s, 0.3)) for s in (0, 1, 2)]
    (v,) = _verdicts(_copy_floor(records, 0.327), "stp", INDUCTION)
    assert v.verdict == UNTESTABLE and "neither arm above the copying an earlier name baseline" in v.text
    assert "STP 20.0%, arm 30.0%, copying an earlier name 32.7%" in v.text
    (v,) = _verdicts(_copy_floor(records, 0.25), "stp", INDUCTION)  # the arm is above copying: judged
    assert v.verdict == SUPPORTED


def test_a_shrinking_disadvantage_does_not_fade(tmp_path):
    records = []
    for seed in (0, 1, 2):  # MTP is worse at both sizes, less so at the larger: no advantage to fade
        records += [load_run(induction_run(tmp_path, "tiny_stp", "stp", seed, 0.6)),
                    load_run(induction_run(tmp_path, "tiny_meta", "meta", seed, 0.2)),
                    load_run(induction_run(tmp_path, "small_stp", "stp", seed, 0.6, trunk=400_000, baseline="small_stp")),
                    load_run(induction_run(tmp_path, "small_meta", "meta", seed, 0.5, trunk=400_000,
                                           baseline="small_stp"))]
    (fades,) = _verdicts(records, "tiny_stp", FADES)
    assert fades.verdict == UNTESTABLE and "no advantage at the smaller size" in fades.text
    assert "contradicted" in fades.text and fades.family  # still a claim row, for the multiplicity count


def test_one_seed_probe_gains_are_not_testable(tmp_path):
    records = [load_run(induction_run(tmp_path, "stp", "stp", 0, 0.2)), load_run(induction_run(tmp_path, "meta", "meta", 0, 0.9))]
    (v,) = _verdicts(records, "stp", INDUCTION)
    assert v.verdict == UNTESTABLE and "one seed" in v.text


def test_largest_out_of_distribution_needs_a_gain_somewhere(tmp_path):
    records = [load_run(polynomial_run(tmp_path, "stp", "stp", s, 0.30, 0.10)) for s in (0, 1)]
    records += [load_run(polynomial_run(tmp_path, "meta", "meta", s, 0.30, 0.10)) for s in (0, 1)]
    groups = group_by_arm(records, "stp")
    by_claim = {v.claim: v for v in probe_verdicts(groups, build_rows(groups, 500), n_resamples=500)}
    assert by_claim[MOST_OOD].verdict == UNTESTABLE and "no gain in or out of distribution" in by_claim[MOST_OOD].text
