"""Verdicts of a study from one checkpoint (report/finetune_claims.py): continued MTP vs
continued STP, post-hoc vs joint acceptance per held-out row, and the exact check that a
frozen next-token model scores as the untouched checkpoint; each can come out either way."""

from __future__ import annotations

import numpy as np
import pytest

from harness.report.arm_rows import build_rows, group_by_arm
from harness.report.collect import load_run
from harness.report.compare import _methods
from harness.report.finetune_claims import CONTINUED, DISTILLED, FROZEN, POSTHOC, finetune_verdicts
from harness.report.inference import CONTRADICTED, SUPPORTED, UNCLEAR, UNTESTABLE
from tests.report.report_helpers import make_run

CKPT = "../ckpt/export"
ROWS, S = 48, 32


def _acceptance(rate: np.ndarray, rng, tokens_per_step: float = 1.3) -> dict:
    """eval/acceptance.json with per-row agreement counts drawn around `rate` (one per row) and
    per-prompt decoding steps around `tokens_per_step` (8 prompts of 64 new tokens)."""
    agree = rng.binomial(S, np.clip(rate, 0, 1)).tolist()
    correct = rng.binomial(S, 0.1, size=ROWS).tolist()
    steps = np.round(64 / (tokens_per_step + rng.normal(0, 0.03, size=8))).astype(int).tolist()
    return {"depths": {"2": {"agree_greedy": sum(agree) / (ROWS * S), "correct": sum(correct) / (ROWS * S),
                             "n": ROWS * S, "rows": {"positions": S, "agree_greedy": agree, "correct": correct}}},
            "speculative": {"tokens_per_step": 8 * 64 / sum(steps), "speedup": 1.1, "identical": True,
                            "per_prompt": {"new_tokens": [64] * 8, "steps": steps}}}


def finetune_runs(root, *, post_rate=0.3, joint_rate=0.45, meta_shift=0.1, frozen_leak=0.0, seeds=3, rows_key=True,
                  distilled: tuple[float, float] | None = None):
    """untouched (STP, all frozen), stp and meta_n2 continued, meta_n2_posthoc (trunk frozen):
    the post-hoc arm's next-token losses are the untouched checkpoint's (plus `frozen_leak` on one
    row), meta_n2's are `meta_shift` nats above continued STP's."""
    rng = np.random.default_rng(7)
    base_pp = 4.0 + rng.gamma(2.0, 0.5, size=(ROWS, S))
    he = (rng.random(50) < 0.3).astype(int)
    row_rate = rng.uniform(0.8, 1.2, size=ROWS)  # rows differ in how predictable they are
    dirs = []
    for s in range(seeds):
        shift = rng.normal(0, 0.003)
        cont = base_pp - 0.1 + shift + rng.normal(0, 0.01, size=base_pp.shape)
        leaked = base_pp.copy()
        leaked[0, 0] += frozen_leak
        acc = lambda rate: _acceptance(rate * row_rate + rng.normal(0, 0.01), rng)  # noqa: E731
        if not rows_key:
            acc = lambda rate: {"depths": {"2": {"agree_greedy": rate, "correct": 0.1, "n": 10}}}  # noqa: E731
        common = {"seed": s, "init_from": CKPT, "outcomes": {"humaneval": he}}
        dirs += [make_run(root, "untouched", "stp", per_position=base_pp, freeze="trunk_and_unembedding", **common),
                 make_run(root, "stp", "stp", per_position=cont, **common),
                 make_run(root, "meta_n2", "meta", per_position=cont + meta_shift, acceptance=acc(joint_rate),
                          tags={"baseline": "stp"}, **common),
                 make_run(root, "meta_n2_posthoc", "meta", per_position=leaked, acceptance=acc(post_rate),
                          freeze="trunk_and_unembedding", **common)]
        if distilled is not None:  # (agree_greedy rate, tokens per step) of a post-hoc arm on distilled data
            rate, per_step = distilled
            dirs.append(make_run(root, "meta_n2_distill", "meta", per_position=base_pp, freeze="trunk_and_unembedding",
                                 acceptance=_acceptance(rate * row_rate, rng, per_step),
                                 recipe_data={"self_distill": {"prompt_tokens": 8}}, **common))
    return dirs


def _verdicts(dirs):
    groups = group_by_arm([load_run(d) for d in dirs], "untouched")
    rows = build_rows(groups, n_resamples=500)
    return finetune_verdicts(groups, rows, n_resamples=500)


def _one(verdicts, claim, statistic_part=""):
    found = [v for v in verdicts if v.claim == claim and statistic_part in v.statistic]
    assert len(found) == 1, [(v.claim, v.statistic) for v in verdicts]
    return found[0]


@pytest.mark.parametrize(("post", "joint", "expected"), [(0.3, 0.45, SUPPORTED), (0.5, 0.35, CONTRADICTED),
                                                         (0.4, 0.4, UNCLEAR)])
def test_post_hoc_against_joint_acceptance_goes_either_way(tmp_path, post, joint, expected):
    v = _one(_verdicts(finetune_runs(tmp_path, post_rate=post, joint_rate=joint)), POSTHOC)
    assert v.arms == "meta_n2_posthoc vs meta_n2" and v.unit == "percentage points"
    assert v.verdict == expected, v.text
    assert v.estimate == pytest.approx(100 * (post - joint), abs=3.0)  # percentage points of acceptance
    assert v.low <= v.estimate <= v.high and v.data_low is not None and v.family


def test_acceptance_without_per_row_counts_is_not_testable_and_says_how_to_rescore(tmp_path):
    v = _one(_verdicts(finetune_runs(tmp_path, rows_key=False)), POSTHOC)
    assert v.verdict == UNTESTABLE and "--force evaluate" in v.text


def test_a_control_is_compared_with_the_arm_it_repeats_not_the_study_baseline(tmp_path):
    """finetune's baseline is the untouched checkpoint, but stp_twin repeats stp: against the
    untouched model continued STP 'gains' 0.1 nats, against stp nothing (it must be null)."""
    from harness.report.arm_rows import reference_arm
    from harness.report.claims import CONTROL, control_checks

    dirs = finetune_runs(tmp_path)
    rng = np.random.default_rng(3)
    base_pp = 4.0 + rng.gamma(2.0, 0.5, size=(ROWS, S))
    for s in range(3):
        dirs.append(make_run(tmp_path, "stp_twin", "stp", seed=100 + s, init_from=CKPT,
                             per_position=base_pp - 0.1 + rng.normal(0, 0.01, size=base_pp.shape),
                             tags={"control_of": "stp"}))
    groups = group_by_arm([load_run(d) for d in dirs], "untouched")
    assert reference_arm(groups, "stp_twin") == "stp" and reference_arm(groups, "stp") == "untouched"
    rows = build_rows(groups, n_resamples=300)
    checks = [v for v in control_checks(groups, rows, []) if v.claim == CONTROL]
    assert checks and all(v.arms == "stp_twin vs stp" for v in checks)


@pytest.mark.parametrize("positions", [0, -3, "32", None, True])
def test_per_row_counts_over_no_positions_are_a_clear_error(tmp_path, positions):
    from harness.errors import HarnessError

    rng = np.random.default_rng(0)
    acceptance = _acceptance(np.full(ROWS, 0.4), rng)
    acceptance["depths"]["2"]["rows"]["positions"] = positions
    run = load_run(make_run(tmp_path, "meta_n2", "meta", per_position=np.ones((ROWS, S)), acceptance=acceptance))
    with pytest.raises(HarnessError, match="not a positive number") as refused:
        run.acceptance_rows("2")
    assert "--force evaluate" in str(refused.value) and f"positions={positions!r}" in str(refused.value)


@pytest.mark.parametrize(("shift", "expected"), [(0.1, CONTRADICTED), (-0.1, SUPPORTED), (0.0, UNCLEAR)])
def test_continued_mtp_against_continued_stp(tmp_path, shift, expected):
    v = _one(_verdicts(finetune_runs(tmp_path, meta_shift=shift)), CONTINUED, "val_loss")
    assert v.arms == "meta_n2 vs stp" and v.verdict == expected, v.text
    assert v.estimate == pytest.approx(shift, abs=0.01)


def test_frozen_next_token_model_is_checked_exactly(tmp_path):
    same = _one(_verdicts(finetune_runs(tmp_path / "a")), FROZEN, "val_loss")
    assert same.verdict.startswith("identical") and not same.family
    leaked = _verdicts(finetune_runs(tmp_path / "b", frozen_leak=1e-3))
    assert _one(leaked, FROZEN, "val_loss").verdict.startswith("NOT identical")  # one position of one row: +0.001
    assert _one(leaked, FROZEN, "humaneval").verdict.startswith("identical")


def test_a_study_without_a_checkpoint_gets_no_finetune_rows_nor_their_methods_note(tmp_path):
    dirs = [make_run(tmp_path, arm, kind, seed=s, per_position=np.full((4, 8), 3.0 + s))
            for s in range(2) for arm, kind in (("stp", "stp"), ("meta_n2", "meta"))]
    groups = group_by_arm([load_run(d) for d in dirs], "stp")
    assert finetune_verdicts(groups, build_rows(groups, n_resamples=200)) == []
    assert "post hoc" not in _methods([])["verdicts"]
    with_rows = _verdicts(finetune_runs(tmp_path / "ft"))
    assert "Mehra" in _methods(with_rows)["verdicts"]


def test_a_row_decided_alone_but_not_across_the_family_says_so_at_a_glance():
    from harness.report.claims import Verdict
    from harness.report.tables import headline_lines

    def row(p_holm):
        return Verdict("a claim", "x vs y", "x - y on val_loss", -0.02, -0.03, -0.01, "nats (lower is better)",
                       SUPPORTED, "", -0.03, -0.01, 0.01, "paired t across 3 seeds", True, p_holm)

    assert "not after Holm" in headline_lines([row(0.15)])[0]
    assert "not after Holm" not in headline_lines([row(0.03)])[0]
    unclear = Verdict("a claim", "x vs y", "s", 0.0, -0.01, 0.01, "nats", UNCLEAR, "", holm_p=0.9)
    assert "not after Holm" not in headline_lines([unclear])[0]


@pytest.mark.parametrize(("rate", "per_step", "expected_steps", "expected_rows"),
                         [(0.5, 1.6, SUPPORTED, SUPPORTED), (0.2, 1.6, SUPPORTED, CONTRADICTED),
                          (0.3, 1.3, UNCLEAR, UNCLEAR)])
def test_self_distilled_against_corpus_post_hoc_heads(tmp_path, rate, per_step, expected_steps, expected_rows):
    found = _verdicts(finetune_runs(tmp_path, distilled=(rate, per_step)))
    steps = _one(found, DISTILLED, "tokens per step")
    rows = _one(found, DISTILLED, "agree_greedy")
    assert steps.arms == rows.arms == "meta_n2_distill vs meta_n2_posthoc"
    assert steps.verdict == expected_steps, steps.text
    assert rows.verdict == expected_rows, rows.text
    assert steps.estimate == pytest.approx(per_step - 1.3, abs=0.1) and "prompts" in steps.text
    # Mehra et al.'s comparison stays between heads trained on the corpus
    assert [v.arms for v in found if v.claim == POSTHOC] == ["meta_n2_posthoc vs meta_n2"]
