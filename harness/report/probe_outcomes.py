"""The probes' per-example outcomes, as the comparison pairs them (`eval/probes/`).

A probe metric is a headline fraction in the run's summary (`induction/accuracy`,
`polynomial/exact_match_ood`, ...) with its rows in `eval/<probe>_greedy.jsonl`. The
comparison needs, for each metric, one outcome per *independent unit*, keyed the same for
every arm, whose mean is the headline:

- induction: the unit is the test story (mentions of one story share its names and its
  context, so they are not independent). A story's outcome is its number of correct
  mentions divided by the mean number of scored mentions per story, so the mean over
  stories equals the pooled accuracy and a bootstrap over stories resamples whole stories.
- polynomial: the unit is the expression (each drawn independently); exact match is 1/0,
  coefficient accuracy the share of the d coefficients right. `_id`/`_ood` keep the
  expressions with m <= / > train_max_ops.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from harness import rundir
from harness.errors import HarnessError

# metric -> (probe, per-row value, which rows); the order is the table's.
PROBE_METRICS = {
    "induction/accuracy": ("induction", "correct", None),
    "polynomial/exact_match_id": ("polynomial", "correct", False),
    "polynomial/exact_match_ood": ("polynomial", "correct", True),
    "polynomial/coefficient_accuracy_id": ("polynomial", "coefficients", False),
    "polynomial/coefficient_accuracy_ood": ("polynomial", "coefficients", True),
}

LABELS = {
    "induction/accuracy": "induction accuracy",
    "polynomial/exact_match_id": "polynomial exact match (in distribution)",
    "polynomial/exact_match_ood": "polynomial exact match (out of distribution)",
    "polynomial/coefficient_accuracy_id": "polynomial coefficient accuracy (in distribution)",
    "polynomial/coefficient_accuracy_ood": "polynomial coefficient accuracy (out of distribution)",
}

UNITS = {"induction": "stories", "polynomial": "expressions"}


# The fields each row must carry; a run directory comes from anyone, so a row without them is
# refused with its place, never read as a score.
FIELDS = {"induction": ("story", "correct"),
          "polynomial": ("task_id", "ood", "correct", "coefficients_correct", "answer")}


def _rows(run_dir: Path, probe: str) -> list[dict] | None:
    path = Path(run_dir) / rundir.EVAL / rundir.probe_name(probe)
    if not path.exists():
        return None
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            row, why = None, f"not JSON ({exc.msg})"
        missing = [] if not isinstance(row, dict) else [f for f in FIELDS[probe] if f not in row]
        if not isinstance(row, dict) or missing:
            why = why if row is None else f"missing {', '.join(missing)}" if missing else "not a JSON object"
            raise HarnessError(f"{path} line {number}: not a {probe} probe row ({why})",
                               fix="evaluate the run again: harness run RECIPE --force evaluate")
        rows.append(row)
    return rows


def probe_outcomes(run_dir: Path, metric: str, coefficients: int | None = None) -> dict[str, float] | None:
    """unit id -> outcome (a fraction; the mean over units is the headline), or None when the
    run has no rows for this metric. `coefficients`: d, for coefficient accuracy."""
    probe, value, ood = PROBE_METRICS[metric]
    rows = _rows(run_dir, probe)
    if rows is None:
        return None
    if probe == "induction":
        correct: dict[str, int] = defaultdict(int)
        for row in rows:
            correct[row["story"]] += bool(row["correct"])
        per_story = len(rows) / len(correct)
        return {story: count / per_story for story, count in correct.items()}
    rows = [r for r in rows if bool(r["ood"]) is ood]
    if not rows:
        return None
    if value == "correct":
        return {r["task_id"]: float(bool(r["correct"])) for r in rows}
    d = coefficients or len(rows[0]["answer"].split(" "))
    return {r["task_id"]: r["coefficients_correct"] / d for r in rows}
