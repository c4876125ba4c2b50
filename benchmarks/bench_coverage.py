"""How often the verdict rule finds an effect that is not there, and how often it finds one that is.

Run from the repository root:  python benchmarks/bench_coverage.py [--reps 4000] [--old-reps 400]
                               [--designs paired,unpaired,one+control,one+declared] [--seeds 2,3,5]
                               [--control-seeds 1,2,4]
(all 50 cells at the defaults: 17 min on 2 busy cores)

Synthetic studies, generated here with a known truth, go through the very functions that
write every verdict and every starred gain (`harness/report/inference.py`: `contrast`, then
`judge`). One study: a baseline and an arm scored on 211 units (the laptop study's held-out
documents), n seeds each:

    y[arm, seed, unit] = difficulty[unit] + effect[arm] + u[arm, seed] + v[seed] + e[arm, seed, unit]

difficulty ~ N(0, 1) shared by all runs (it cancels in the pairing); e ~ N(0, 1), the per-unit
noise of one trained model, so the gain's data-sampling SE is sqrt(2 / 211); u and v are seed
effects with variance (rho x SE)^2 / 2 each, where v is shared by the arms that run the same
seed (the data order: the batch at step k depends only on (seed, k)). rho = the seed SD of an
arm's mean / the data-sampling SE of the gain, as in the review that measured the previous
statistic. Designs: "paired" (both arms on seeds 0..n-1: sharing v) and "unpaired" (the arm on
other seeds, like a negative control: Welch), and two one-seed designs, where the across-seed
interval needs a seed SD from elsewhere (`harness/report/compare.py: seed_references`): both arms
on seed 0 with a negative control (the baseline again on seeds 100..) that measures it
("one+control", the control on 1, 2 or 4 seeds, `--control-seeds`; pooled with the
baseline's seed, so the t interval has that many degrees of freedom), or the true seed SD
declared (`seed_sd:` in the study; "one+declared", one row).

Printed per cell: the false-positive rate at effect 0 (share of studies whose verdict is not
"not distinguishable"), with a 95% Wilson interval; the power at a true effect of twice the seed
SD of an arm's mean (at rho = 0, twice the data-sampling SE); and, for comparison, the previous
statistic's false-positive rate (the two-level percentile bootstrap over units and seed means,
kept below as it was). The LAST line is `max false-positive rate: X.X% over N cells`; the target
is <= 6% in every cell (5% nominal plus Monte Carlo error).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.report.inference import (  # noqa: E402
    UNCLEAR, SeedReference, Term, contrast, judge, reference_from_control, seed_interval)

UNITS = 211
SEEDS = (2, 3, 5)
CONTROL_SEEDS = (1, 2, 4)
RHOS = (0.0, 1.0, 2.0, 5.0, 10.0)
DESIGNS = ("paired", "unpaired", "one+control", "one+declared")
ONE_SEED_DESIGNS = ("one+control", "one+declared")


def _trained_models(rng, rho: float, units: int, seeds):
    """run(seed, shift): one trained model's outcomes per unit. Draws the units' difficulty
    (shared by every run of the study) and the data-order effect v of each of `seeds` (shared
    by the runs on that seed); each call draws its own seed effect u and per-unit noise e."""
    se = math.sqrt(2.0 / units)
    half = rho * se / math.sqrt(2.0)  # u and v each carry half the seed variance of an arm's mean
    difficulty = rng.normal(0, 1, units)
    shared = {s: rng.normal(0, half) for s in seeds}

    def run(seed: int, shift: float) -> np.ndarray:
        return difficulty + shift + rng.normal(0, half) + shared[seed] + rng.normal(0, 1, units)

    return run


def study(rng, n_seeds: int, rho: float, design: str, effect: float = 0.0, units: int = UNITS):
    """(baseline [seeds, units], arm [seeds, units], baseline seeds, arm seeds, seed reference).
    One-seed designs run both arms on seed 0, as a one-seed study does, and the reference is
    measured by a negative control (the baseline again) on `n_seeds` seeds 100.. pooled with the
    baseline (what `harness compare` does), or is the true seed SD of an arm's mean, declared;
    the other designs need none (None)."""
    if design in ONE_SEED_DESIGNS:
        base_seeds = arm_seeds = (0,)
        control_seeds = tuple(100 + s for s in range(n_seeds)) if design == "one+control" else ()
        run = _trained_models(rng, rho, units, base_seeds + control_seeds)
    else:
        base_seeds = tuple(range(n_seeds))
        arm_seeds = base_seeds if design == "paired" else tuple(100 + s for s in range(n_seeds))
        run = _trained_models(rng, rho, units, set(base_seeds) | set(arm_seeds))
    base = np.stack([run(s, 0.0) for s in base_seeds])
    arm = np.stack([run(s, effect) for s in arm_seeds])
    reference = None
    if design == "one+declared":
        # an arm's mean moves by the seed effects (rho x SE) and by its own per-unit noise
        se = math.sqrt(2.0 / units)
        reference = SeedReference(math.sqrt((rho * se) ** 2 + 1.0 / units), None, "declared")
    elif design == "one+control":
        control = np.stack([run(s, 0.0) for s in control_seeds])
        reference = reference_from_control(control.mean(axis=1).tolist(), base.mean(axis=1).tolist(), "control")
    return base, arm, base_seeds, arm_seeds, reference


def verdict_finds_effect(base, arm, base_seeds, arm_seeds, reference, n_resamples: int, seed: int,
                         shortcut: bool = True) -> bool:
    terms = [Term(1.0, arm, arm_seeds), Term(-1.0, base, base_seeds)]
    if shortcut:
        # The rule claims an effect only when both intervals exclude zero: when the one across
        # seeds holds zero the verdict is "not distinguishable" whatever the bootstrap says, so
        # the bootstrap (most of the time of a study) is skipped. Same verdict, study by study
        # (the bootstrap draws from its own generator, `seed`): tests/report/test_report_coverage.py
        _, low, high, *_, why = seed_interval(terms, reference)
        if why is None and low <= 0 <= high:
            return False
    est = contrast(terms, reference=reference, n_resamples=n_resamples, seed=seed)
    return judge(est) != UNCLEAR


def trial(rng, n_seeds: int, rho: float, design: str, effect: float, n_resamples: int, seed: int,
          shortcut: bool = True) -> bool:
    """One synthetic study through the verdict rule: does it claim an effect?"""
    return verdict_finds_effect(*study(rng, n_seeds, rho, design, effect), n_resamples, seed, shortcut)


def previous_finds_effect(base, arm, n_resamples: int, rng) -> bool:
    """The statistic the verdicts used before: per draw, units resampled once for both arms and
    each arm's seed means resampled on their own; a 95% percentile interval."""
    n = base.shape[1]
    units = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)
    picks = lambda k: rng.multinomial(k, np.full(k, 1.0 / k), size=n_resamples).astype(float) / k  # noqa: E731
    b, a = picks(base.shape[0]) @ base, picks(arm.shape[0]) @ arm
    draws = ((a - b) * units).sum(axis=1) / n
    low, high = np.quantile(draws, [0.025, 0.975])
    return low > 0 or high < 0


def wilson(hits: int, n: int) -> tuple[float, float]:
    p, z = hits / n, 1.96
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def rate(rng, reps: int, n_seeds: int, rho: float, design: str, effect: float, n_resamples: int) -> int:
    return sum(trial(rng, n_seeds, rho, design, effect, n_resamples, seed=i) for i in range(reps))


def cells(reps: int, power_reps: int, old_reps: int, n_resamples: int, seed: int = 0,
          seeds=SEEDS, rhos=RHOS, designs=DESIGNS, control_seeds=CONTROL_SEEDS):
    """Yield one dict per cell: its false-positive count, power count and the previous statistic's."""
    rng = np.random.default_rng(seed)
    for design in designs:
        for n_seeds in {"one+control": control_seeds, "one+declared": (1,)}.get(design, seeds):
            for rho in rhos:
                se = math.sqrt(2.0 / UNITS)
                effect = 2 * (rho * se if rho > 0 else se)
                fp = rate(rng, reps, n_seeds, rho, design, 0.0, n_resamples)
                power = rate(rng, power_reps, n_seeds, rho, design, effect, n_resamples) if power_reps else 0
                old = sum(previous_finds_effect(*study(rng, n_seeds, rho, design)[:2], n_resamples, rng)
                          for _ in range(old_reps)) if old_reps else 0
                yield {"design": design, "seeds": n_seeds, "rho": rho, "fp": fp, "reps": reps, "power": power,
                       "power_reps": power_reps, "old": old, "old_reps": old_reps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=4000, help="studies per cell at effect 0 (>= 400)")
    parser.add_argument("--power-reps", type=int, default=500, help="studies per cell at the true effect")
    parser.add_argument("--old-reps", type=int, default=400, help="studies per cell for the previous statistic")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the data interval")
    parser.add_argument("--designs", default=",".join(DESIGNS), help=f"comma-separated: {', '.join(DESIGNS)}")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="seeds per arm, comma-separated (paired, unpaired)")
    parser.add_argument("--control-seeds", default=",".join(map(str, CONTROL_SEEDS)),
                        help="one+control: the negative control's seeds, comma-separated")
    args = parser.parse_args()
    designs = tuple(d for d in args.designs.split(",") if d)
    unknown = set(designs) - set(DESIGNS)
    if unknown:
        parser.error(f"unknown design {', '.join(sorted(unknown))}; choose from {', '.join(DESIGNS)}")
    seeds = tuple(int(n) for n in args.seeds.split(",") if n)
    if any(n < 2 for n in seeds):
        parser.error("seeds per arm must be >= 2 (one seed gives no interval across seeds)")
    control_seeds = tuple(int(n) for n in args.control_seeds.split(",") if n)
    if any(n < 1 for n in control_seeds):
        parser.error("--control-seeds must be >= 1")
    started = time.perf_counter()
    print(f"{UNITS} units; {args.reps} studies per cell at effect 0, {args.power_reps} at effect = 2 x seed SD; "
          f"data-sampling bootstrap {args.resamples} resamples; previous statistic {args.old_reps} studies per cell")
    print(f"{'design':<12} {'seeds':>5} {'rho':>5} {'false positives [95% CI]':>26} {'power':>7} {'previous':>9}")
    worst, count = 0.0, 0
    for cell in cells(args.reps, args.power_reps, args.old_reps, args.resamples, seeds=seeds, designs=designs,
                      control_seeds=control_seeds):
        fp = cell["fp"] / cell["reps"]
        low, high = wilson(cell["fp"], cell["reps"])
        power = f"{cell['power'] / cell['power_reps']:.1%}" if cell["power_reps"] else "-"
        old = f"{cell['old'] / cell['old_reps']:.1%}" if cell["old_reps"] else "-"
        shown = f"1+{cell['seeds']}" if cell["design"] == "one+control" else str(cell["seeds"])  # + control seeds
        print(f"{cell['design']:<12} {shown:>5} {cell['rho']:>5g} {fp:>9.1%} [{low:.1%}, {high:.1%}]"
              f"{power:>10} {old:>9}", flush=True)
        worst, count = max(worst, fp), count + 1
    print(f"({time.perf_counter() - started:.0f} s)")
    print(f"max false-positive rate: {worst:.1%} over {count} cells")


if __name__ == "__main__":
    main()
