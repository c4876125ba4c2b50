"""The comparison table: one row per arm (cost, scores, gain over the baseline with its
intervals, head acceptance), built from finished runs that are comparable.

A gain is the arm's mean minus the baseline's over the same units (problems, held-out
documents, stories). Its interval is across seeds (`inference.contrast`: paired t when both
arms ran the same seeds, Welch otherwise, none from one seed unless a seed SD is known),
with the data-sampling-only bootstrap over units beside it; a gain counts as shown (*) only
when both exclude zero. pass@k values and gains are in percentage points, like the
published rows; `val_loss` is the held-out next-token cross-entropy in nats, one value per
held-out document (`collect.PositionSummary`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.errors import HarnessError
from harness.report.collect import RunRecord
from harness.report.inference import Estimate, SeedReference, Term, contrast

# What must agree for two runs' numbers to be compared (besides their problem sets).
EVAL_SETTINGS = ("protocol", "tasks", "limit", "max_gen_toks", "n_samples", "temperatures", "top_p", "batch_size",
                 "prompt_budget_humaneval", "prompt_budget_mbpp")


def group_by_arm(records: list[RunRecord], baseline: str) -> dict[str, list[RunRecord]]:
    """Arms in order, baseline first; seeds sorted; duplicate (arm, seed) refused."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        groups[record.arm].append(record)
    if baseline not in groups:
        raise HarnessError(f"baseline arm {baseline!r} is not among the runs ({', '.join(groups)})",
                           fix="pass --baseline ARM naming one of them")
    for arm, runs in groups.items():
        seeds = [r.seed for r in runs]
        if len(set(seeds)) != len(seeds):
            dirs = ", ".join(str(r.run_dir) for r in runs)
            raise HarnessError(f"arm {arm} has the same seed more than once ({dirs})",
                               fix="compare one study at a time (--study NAME), or name the run directories")
        runs.sort(key=lambda r: r.seed)
    return {baseline: groups[baseline], **{a: g for a, g in groups.items() if a != baseline}}


def _setting(summary: dict, key: str):
    """An evaluation setting as recorded (protocols under their old names read as the new)."""
    from harness.eval.config import PROTOCOL_ALIASES

    value = summary.get(key)
    return PROTOCOL_ALIASES.get(value, value) if key == "protocol" else value


def comparability_problems(records: list[RunRecord]) -> list[str]:
    """What differs between runs that must share it: data, tokenizer, eval settings, rows."""
    checks = {
        "data manifest": lambda r: r.manifest_hash[:12],
        "tokenizer": lambda r: r.tokenizer_hash[:12],
        **{f"eval {key}": (lambda r, key=key: str(_setting(r.summary, key))) for key in EVAL_SETTINGS},
        # A run without per-position losses only leaves the long-sequence verdict untested.
        "held-out rows (per_position shape)": lambda r: None if r.positions is None else str(r.positions.shape),
    }
    problems = []
    for what, value in checks.items():
        seen: dict[str, list[str]] = defaultdict(list)
        for record in records:
            if (key := value(record)) is not None:
                seen[key].append(f"{record.arm}/s{record.seed}")
        if len(seen) > 1:
            problems.append(f"{what} differs: " + "; ".join(f"{v or '?'} ({', '.join(who)})" for v, who in seen.items()))
    return problems


def check_comparable(records: list[RunRecord], force: bool) -> list[str]:
    """Refuse runs made from different data, tokenizers or evaluation settings, unless forced."""
    problems = comparability_problems(records)
    if problems and not force:
        raise HarnessError("not comparable: " + " | ".join(problems),
                           fix="rerun the arms with the same data, tokenizer and eval sections, "
                               "or pass --force to compare anyway (the report then says so)")
    return problems


def objective_label(record: RunRecord) -> str:
    """The objective's own label ("meta n=2"); the kind when it is not installed here."""
    cfg = record.objective_cfg
    return cfg.label() if cfg is not None else record.kind


@dataclass
class ArmRow:
    arm: str
    objective: str
    kind: str
    seeds: list[int]
    run_dirs: list[str]
    params: int
    train_flops: float
    tokens: int
    targets_per_step: int
    val_loss: float | None
    collapsed: list[str] = field(default_factory=list)  # "seed N: reason" for every collapsed run
    stuck: list[str] = field(default_factory=list)  # "seed N: reason" for every run stuck on a plateau
    control_of: str | None = None  # a negative control of this arm (its gains must be null)
    baseline: str | None = None  # the arm its gains are over, when not the study's baseline
    nll: dict[str, float] = field(default_factory=dict)  # nll/<task> -> bits per byte, mean over seeds
    metrics: dict[str, float] = field(default_factory=dict)  # pass@k in percent, mean over seeds
    gains: dict[str, dict] = field(default_factory=dict)  # metric -> Gain fields (+ unit)
    acceptance: dict[str, dict] = field(default_factory=dict)  # depth -> agree_greedy, correct
    depth_names: dict[str, str] = field(default_factory=dict)  # depth -> the objective's name for it
    speculative: dict = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)  # task -> prompts cut to the trained context

    def as_dict(self) -> dict:
        return asdict(self)


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def outcome_matrix(runs: list[RunRecord], other: list[RunRecord], metric: str):
    """[seeds, problems] for both arms over the problems every run of both has, or None.
    `metric`: pass@k (`humaneval/pass_at_1`: 1/0 or the per-problem estimate) or the
    canonical-solution NLL (`nll/humaneval`: bits per byte)."""
    getter = (lambda r: r.nll(metric.split("/", 1)[1])) if metric.startswith("nll/") else (lambda r: r.outcomes(metric))
    per_run = [getter(r) for r in runs + other]
    if any(o is None for o in per_run):
        return None
    common = sorted(set.intersection(*(set(o) for o in per_run)), key=str)
    if not common:
        return None
    rows = [[o[p] for p in common] for o in per_run]
    return np.array(rows[: len(runs)]), np.array(rows[len(runs):])


def rows_matrix(runs: list[RunRecord]) -> np.ndarray | None:
    """[seeds, rows]: each held-out row's mean next-token loss over positions, per seed."""
    found = [r.positions for r in runs]
    if any(p is None for p in found) or len({p.shape for p in found}) > 1:
        return None
    return np.stack([p.rows[:, 2] for p in found])


def metric_pair(base: list[RunRecord], runs: list[RunRecord], metric: str):
    """([seeds, units] of the baseline, of the arm) over the units both score, or None."""
    if metric == "val_loss":
        b, a = rows_matrix(base), rows_matrix(runs)
        return None if b is None or a is None or b.shape[1] != a.shape[1] else (b, a)
    return outcome_matrix(base, runs, metric)


def seeds_of(runs: list[RunRecord]) -> tuple[int, ...]:
    return tuple(r.seed for r in runs)


def scale_of(metric: str) -> float:
    """Table units per outcome unit: pass@k and probe scores in percentage points."""
    return 1.0 if metric == "val_loss" or metric.startswith("nll/") else 100.0


def gain_estimate(base: list[RunRecord], runs: list[RunRecord], metric: str, *, n_resamples: int,
                  reference: SeedReference | None = None) -> Estimate | None:
    """arm - baseline on `metric`, in table units (None when the two share no units)."""
    pair = metric_pair(base, runs, metric)
    if pair is None:
        return None
    terms = [Term(1.0, pair[1], seeds_of(runs)), Term(-1.0, pair[0], seeds_of(base))]
    return contrast(terms, reference=reference, n_resamples=n_resamples).scaled(scale_of(metric))


def gain_dict(est: Estimate, unit: str) -> dict:
    return {**est.as_dict(), "n": est.n_units, "unit": unit}


def gains_over(base: list[RunRecord], runs: list[RunRecord], n_resamples: int,
               references: dict[str, SeedReference] | None = None) -> dict[str, dict]:
    out = {}
    metrics = sorted(set(base[0].metrics()) & set(runs[0].metrics()))
    nll = sorted(set(base[0].nll_metrics()) & set(runs[0].nll_metrics()))
    for metric in [*metrics, *nll, "val_loss"]:
        est = gain_estimate(base, runs, metric, n_resamples=n_resamples, reference=(references or {}).get(metric))
        if est is None:
            continue
        out[metric] = gain_dict(est, unit_of(metric))
        pair = metric_pair(base, runs, metric)
        if scale_of(metric) != 1.0 and not (pair[0].any() or pair[1].any()):  # a zero-width interval measures nothing
            out[metric]["note"] = "neither arm solves a problem"
        elif est.untestable:
            out[metric]["note"] = f"not testable: {est.untestable.split(':')[0]}"
    return out


def unit_of(metric: str) -> str:
    if metric == "val_loss":
        return "nats (lower is better)"
    return NLL_UNIT if metric.startswith("nll/") else "percentage points"


def per_seed_means(runs: list[RunRecord], metric: str) -> list[float] | None:
    """Each run's mean on `metric` over its units, in table units (for a seed-SD reference)."""
    if metric == "val_loss":
        m = rows_matrix(runs)
    else:
        getter = (lambda r: r.nll(metric.split("/", 1)[1])) if metric.startswith("nll/") else (lambda r: r.outcomes(metric))
        found = [getter(r) for r in runs]
        if any(o is None or not o for o in found):
            return None
        m = [list(o.values()) for o in found]
    return None if m is None else [float(np.mean(x)) * scale_of(metric) for x in m]


NLL_UNIT = "bits/byte (lower is better)"


def _nll_means(runs: list[RunRecord]) -> dict[str, float]:
    """Byte-weighted canonical-solution bits per byte per task, averaged over seeds."""
    keys = sorted({k for r in runs for k in r.summary if k.startswith("nll/") and k.endswith("/bits_per_byte")})
    return {k.removesuffix("/bits_per_byte"): _mean([r.summary.get(k) for r in runs]) for k in keys}


def _acceptance(runs: list[RunRecord]) -> tuple[dict, dict]:
    """eval/acceptance.json averaged over seeds: per depth, and the speculative decoding run."""
    found = [r.acceptance for r in runs if r.acceptance]
    if not found:
        return {}, {}
    depths = sorted({d for a in found for d in a.get("depths", {})}, key=int)
    per_depth = {d: {key: _mean([a["depths"].get(d, {}).get(key) for a in found])
                     for key in ("agree_greedy", "correct")} for d in depths}
    spec = [a.get("speculative") or {} for a in found]
    speculative = {key: _mean([s.get(key) for s in spec])
                   for key in ("tokens_per_step", "speedup") if any(key in s for s in spec)}
    if any("identical" in s for s in spec):
        speculative["identical"] = all(s.get("identical", False) for s in spec)
    return per_depth, speculative


def _truncated(run: RunRecord) -> dict[str, int]:
    """Prompts the evaluation cut to the trained context, per task (the same for every seed)."""
    suffix = "/truncated_prompts"
    return {key.removesuffix(suffix): int(v) for key, v in run.summary.items() if key.endswith(suffix)}


def reference_arm(groups: dict[str, list[RunRecord]], arm: str) -> str | None:
    """The arm `arm`'s gains are over: for a negative control the arm it repeats (`control_of`:
    its gains must be null against that arm, whatever the study's baseline), else its study's
    `baseline:` for it (an STP arm of the same model size), else the comparison's baseline;
    None for a baseline itself or one not run."""
    first = groups[arm][0]
    ref = first.control_of or first.baseline_of or next(iter(groups))
    return None if ref == arm or ref not in groups else ref


def build_rows(groups: dict[str, list[RunRecord]], n_resamples: int = 10_000,
               references: dict[str, SeedReference] | None = None) -> list[ArmRow]:
    baseline = next(iter(groups))
    rows = []
    for arm, runs in groups.items():
        ref = reference_arm(groups, arm)
        plan = runs[0].plan
        metrics = {m: _mean([100.0 * r.metrics().get(m) if m in r.metrics() else None for r in runs])
                   for m in sorted({m for r in runs for m in r.metrics()})}
        acceptance, speculative = _acceptance(runs)
        cfg = runs[0].objective_cfg
        names = {d: cfg.depth_name(int(d)) if cfg is not None else f"d{d}" for d in acceptance}
        rows.append(ArmRow(
            arm=arm, objective=objective_label(runs[0]), kind=runs[0].kind,
            seeds=[r.seed for r in runs], run_dirs=[r.run_dir.name for r in runs],
            params=int(plan.get("params_total", 0)), train_flops=float(plan.get("total_flops", 0.0)),
            tokens=int(plan.get("tokens", 0)), targets_per_step=int(plan.get("targets_per_step", 0)),
            val_loss=_mean([r.val.get("val/depth_1") for r in runs]), metrics=metrics,
            collapsed=[f"seed {r.seed}: {'; '.join(r.collapse)}" for r in runs if r.collapse],
            stuck=[f"seed {r.seed}: {'; '.join(r.stuck)}" for r in runs if r.stuck],
            control_of=runs[0].control_of, baseline=ref if ref not in (None, baseline) else None,
            nll=_nll_means(runs), gains={} if ref is None else gains_over(groups[ref], runs, n_resamples, references),
            acceptance=acceptance, depth_names=names, speculative=speculative, truncated=_truncated(runs[0]),
        ))
    return rows
