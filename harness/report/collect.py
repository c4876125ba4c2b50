"""Finished run directories as records a comparison can read, and where to find them.

Runs are found three ways: from a study file (each arm x seed's run directory follows from
its budgeted recipe, as `harness study` made it), from run directories named on the command
line, or from an MLflow experiment (each run's `harness.run_dir` tag, or `harness.synced_from`
for runs uploaded by `harness sync`). Everything is read from the run directory, the durable
copy; MLflow is only the index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from harness.errors import HarnessError
from harness.eval.benchmarks import TASK_NAMES
from harness.eval.canonical_nll import per_problem
from harness.eval.collapse import collapse_reasons
from harness.eval.passk import pass_at_k
from harness.eval.trajectory import read_trajectory
from harness.report.probe_outcomes import PROBE_METRICS, probe_outcomes

TASKS = tuple(TASK_NAMES)


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


@dataclass
class RunRecord:
    """One finished run: its arm, seed and everything the comparison reads from it."""

    run_dir: Path
    recipe: dict
    plan: dict
    stages: dict
    data: dict
    summary: dict
    arm: str = ""
    seed: int = 0
    tags: dict = field(default_factory=dict)

    @property
    def objective(self) -> dict:
        return self.recipe.get("objective", {"kind": "stp"})

    @property
    def kind(self) -> str:
        return self.objective.get("kind", "stp")

    @cached_property
    def objective_cfg(self):
        """The run's objective as its config class (`None` when its kind is not installed)."""
        from harness.model.objectives.registry import described

        return described(self.objective)

    def claims(self) -> tuple[str, ...]:
        """The comparison claims this run's objective joins (`objectives/base.py: CLAIMS`)."""
        return self.objective_cfg.claims if self.objective_cfg is not None else ()

    @property
    def manifest_hash(self) -> str:
        return self.data.get("manifest_hash", "")

    @property
    def tokenizer_hash(self) -> str:
        return self.data.get("manifest", {}).get("tokenizer", {}).get("hash", "")

    @property
    def val(self) -> dict[str, float]:
        return self.stages.get("train", {}).get("outputs", {}).get("val", {}) or self.summary.get("val", {})

    def metrics(self) -> dict[str, float]:
        """Headline pass@k per task (`humaneval/pass_at_1`, ...) and probe scores
        (`induction/accuracy`, `polynomial/exact_match_ood`, ...), as fractions."""
        out = {}
        for key, value in self.summary.items():
            task, _, name = key.partition("/")
            if (task in TASKS and name.startswith("pass_at_") and name[8:].isdigit()) or key in PROBE_METRICS:
                out[key] = float(value)
        return out

    def outcomes(self, metric: str) -> dict | None:
        """Per-unit outcome behind a headline metric: 1/0 for greedy pass@1, else the
        unbiased pass@k estimate per problem at the temperature the headline used; for a
        probe metric, per story or expression (`probe_outcomes.py`)."""
        if metric in PROBE_METRICS:
            return probe_outcomes(self.run_dir, metric)
        task, _, name = metric.partition("/")
        k = int(name.removeprefix("pass_at_"))
        temperature = self.summary.get(f"{metric}_temperature")
        variant = "greedy" if temperature is None else f"t{float(temperature):g}"
        path = self.run_dir / "eval" / f"{task}_{variant}.jsonl"
        if not path.exists():
            return None
        counts: dict = {}
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                n, c = counts.get(row["task_id"], (0, 0))
                counts[row["task_id"]] = (n + 1, c + (row["status"] == "passed"))
        if any(n < k for n, _ in counts.values()):
            return None
        return {tid: pass_at_k(n, c, k) for tid, (n, c) in counts.items()}

    @cached_property
    def per_position(self) -> np.ndarray | None:
        """[rows, S] next-token cross-entropy (nats) on the fixed held-out rows, if evaluated."""
        path = self.run_dir / "eval" / "per_position.npy"
        return np.load(path).astype(np.float64) if path.exists() else None

    @cached_property
    def trajectory(self) -> np.ndarray | None:
        """[K, rows, S] per-position losses at the run's kept checkpoints (the last final)."""
        found = read_trajectory(self.run_dir / "eval")
        return None if found is None or not len(found["steps"]) else found["losses"].astype(np.float64)

    def nll(self, task: str) -> dict | None:
        """Per-problem bits per byte of the canonical solution (`eval/nll_<task>.jsonl`)."""
        return per_problem(self.run_dir / "eval" / f"nll_{task}.jsonl")

    def nll_metrics(self) -> list[str]:
        """`nll/<task>` for every task whose canonical-solution NLL was scored."""
        return [f"nll/{task}" for task in TASKS if (self.run_dir / "eval" / f"nll_{task}.jsonl").exists()]

    @property
    def references(self) -> dict[str, float]:
        """Count-based reference losses of the held-out rows (unigram, bigram, skip_bigram)."""
        return {k.removeprefix("reference/"): v for k, v in self.summary.items() if k.startswith("reference/")}

    @property
    def collapse(self) -> list[str]:
        """Why this run counts as collapsed (`eval/collapse.py`); empty when it does not. This
        harness's rule applied to the recorded losses (not the reasons a run stored, which an
        older rule may have written)."""
        cfg = self.objective_cfg
        return collapse_reasons(self.val, self.summary.get("position/loss_mean"), self.summary.get("reference/unigram"),
                                deeper_depths_are_harder=cfg.deeper_depths_are_harder if cfg is not None else True)

    @property
    def baseline_of(self) -> str | None:
        """The arm this run's gains are measured against when its study names one for it (an
        arm's `baseline:`, e.g. the STP arm of the same model size), else None."""
        return self.tags.get("baseline") or None

    @property
    def control_of(self) -> str | None:
        """The arm a negative control repeats (its study's `control_of`), else None."""
        return self.tags.get("control_of") or None

    @property
    def acceptance(self) -> dict | None:
        return _json(self.run_dir / "eval" / "acceptance.json")

    def val_curve(self, depth: str = "val/depth_1") -> list[tuple[float, float, float]]:
        """(tokens seen, training FLOPs spent, validation loss) at each evaluation step."""
        path = self.run_dir / "track" / "metrics.jsonl"
        if not path.exists():
            return []
        per_token = float(self.plan.get("flops_per_token", {}).get("total", 0.0))
        rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
        return [(r["tokens_seen"], r["tokens_seen"] * per_token, r[depth]) for r in rows
                if depth in r and "tokens_seen" in r]


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run directory; refuse one whose training or evaluation has not finished."""
    run_dir = Path(run_dir)
    stages = _json(run_dir / "stages.json")
    if stages is None or not (run_dir / "recipe.yaml").exists():
        raise HarnessError(f"{run_dir} is not a harness run directory (no stages.json / recipe.yaml)",
                           fix="pass directories made by `harness run` or `harness study`")
    missing = [s for s in ("train", "evaluate") if s not in stages]
    if missing:
        raise HarnessError(f"{run_dir} has not finished (no {' or '.join(missing)} stage yet)",
                           fix="finish it first: `harness run RECIPE` or `harness study STUDY` resumes it")
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    summary = _json(run_dir / "eval" / "summary.json") or stages["evaluate"]["outputs"].get("summary", {})
    tags = recipe.get("track", {}).get("tags", {})
    return RunRecord(
        run_dir=run_dir, recipe=recipe, plan=_json(run_dir / "plan.json") or {}, stages=stages,
        data=_json(run_dir / "data.json") or {}, summary=summary,
        arm=tags.get("arm", recipe["name"]), seed=int(tags.get("seed", recipe["train"].get("seed", 0))), tags=tags,
    )


def runs_of_study(study, runs_root: Path, *, allow_missing: bool = False, lrs: dict | None = None,
                  view: str | None = None) -> list[RunRecord]:
    """The run directory of every arm x seed of a loaded study (of one of its secondary views
    that trains runs of its own, with `view`); `lrs`: the sweep's chosen rates."""
    from harness.pipeline import run_dir_for

    records, missing = [], []
    for arm, seed, recipe in (study.runs(lrs) if view is None else study.view_runs(view, lrs)):
        run_dir = run_dir_for(recipe, runs_root)
        if not (run_dir / "stages.json").exists():
            missing.append(f"{arm} seed {seed} ({run_dir})")
            continue
        record = load_run(run_dir)
        record.arm, record.seed = arm, seed  # the study's names win over the recipe's tags
        records.append(record)
    if missing and not allow_missing:
        raise HarnessError(f"study {study.config.name}: not run yet: {'; '.join(missing)}",
                           fix=f"run `harness study {study.path}` (with the same overrides and --runs), "
                               "or pass --force to compare the arms that exist")
    return records


def runs_of_experiment(experiment: str, study: str | None = None) -> list[RunRecord]:
    """Run directories recorded on an MLflow experiment's runs (optionally one study's)."""
    from harness.track import _quiet_mlflow_env, reachable, tracking_uri

    uri = tracking_uri()
    ok, why = reachable(uri)
    if not ok:
        raise HarnessError(f"tracking store {uri} is unreachable ({why})",
                           fix="start it, set MLFLOW_TRACKING_URI, or pass the study file or run directories instead")
    _quiet_mlflow_env()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise HarnessError(f"no MLflow experiment {experiment!r} in {uri}", fix="check the name with `harness ui`")
    runs = client.search_runs([found.experiment_id], max_results=5000)
    dirs: dict[str, None] = {}
    for run in runs:
        tags = run.data.tags
        if "harness.superseded_by" in tags or tags.get("harness.kind") == "comparison":
            continue
        if study and tags.get("study") != study:
            continue
        path = tags.get("harness.run_dir") or tags.get("harness.synced_from")
        if path and Path(path).is_dir():
            dirs.setdefault(str(Path(path).resolve()))
    if not dirs:
        raise HarnessError(f"MLflow experiment {experiment!r} has no runs whose run directory is on this machine",
                           fix="pass the run directories instead, or run compare where the runs were made")
    return [load_run(Path(d)) for d in dirs]
