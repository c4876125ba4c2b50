"""Finished run directories as records a comparison can read, and where to find them.

Runs are found three ways: from a study file (each arm x seed's run directory follows from
its budgeted recipe, as `harness study` made it), from run directories named on the command
line, or from an MLflow experiment (each run's `harness.run_dir` tag, or `harness.synced_from`
for runs uploaded by `harness sync`). Everything is read from the run directory, the durable
copy; MLflow is only the index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from harness import rundir
from harness.data.benchmarks import TASK_NAMES
from harness.errors import HarnessError
from harness.eval.analyses.canonical_nll import per_problem
from harness.eval.analyses.collapse import collapse_reasons
from harness.eval.analyses.trajectory import read_trajectory
from harness.eval.benchmarks.passk import pass_at_k
from harness.model.objectives.registry import default_objective
from harness.report.probe_outcomes import PROBE_METRICS, probe_outcomes
from harness.rundir import RunDir

TASKS = tuple(TASK_NAMES)
# What a comparison needs of the per-position losses, kept in committed records instead of the
# [rows, S] arrays (MBs per run): per row its mean over the first quarter of positions, the last
# quarter and all positions; the mean curve over rows; the same per-row summary at every kept
# checkpoint (the matched late-vs-early statistic reads nothing else).


def summarize_rows(losses: np.ndarray) -> np.ndarray:
    """[..., rows, S] -> [..., rows, 3]: per row, the mean loss over the first quarter of
    positions, the last quarter and all of them (float64)."""
    losses = np.asarray(losses, dtype=np.float64)
    q = max(1, losses.shape[-1] // 4)
    return np.stack([losses[..., :q].mean(-1), losses[..., -q:].mean(-1), losses.mean(-1)], axis=-1)


@dataclass(frozen=True)
class PositionSummary:
    rows: np.ndarray  # [rows, 3]: early quarter, late quarter, all positions (nats)
    curve: np.ndarray  # [S]: mean over rows per position
    trajectory: np.ndarray | None  # [K, rows, 3] at the kept checkpoints (the last final), or None

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.shape[0], self.curve.shape[0]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("rows", "curve", "trajectory"):
            if getattr(self, name) is not None:
                np.save(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> "PositionSummary":
        trajectory = folder / "trajectory.npy"
        return cls(np.load(folder / "rows.npy"), np.load(folder / "curve.npy"),
                   np.load(trajectory) if trajectory.exists() else None)


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
    stuck: list[str] = field(default_factory=list)  # why the comparison counts it stuck (its study's plateau rule)

    @property
    def files(self) -> RunDir:
        return RunDir(self.run_dir)

    @property
    def objective(self) -> dict:
        return self.recipe.get("objective") or {"kind": default_objective().kind}

    @property
    def kind(self) -> str:
        return self.objective.get("kind", default_objective().kind)

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
        path = self.files.eval / rundir.samples_name(task, variant)
        if not path.exists():
            return None
        counts: dict = {}
        for row in rundir.read_jsonl(path, fields=("task_id", "status")):
            n, c = counts.get(row["task_id"], (0, 0))
            counts[row["task_id"]] = (n + 1, c + (row["status"] == "passed"))
        if any(n < k for n, _ in counts.values()):
            return None
        return {tid: pass_at_k(n, c, k) for tid, (n, c) in counts.items()}

    @cached_property
    def positions(self) -> PositionSummary | None:
        """The per-position losses on the fixed held-out rows as the comparison reads them
        (from a committed record's summary, or from the run's eval/per_position.npy and its
        trajectory); None when the run scored none."""
        summary = self.files.eval / rundir.POSITION_SUMMARY
        if summary.exists():
            return PositionSummary.load(summary)
        path = self.files.eval / rundir.PER_POSITION
        if not path.exists():
            return None
        losses = np.load(path).astype(np.float64)
        found = read_trajectory(self.files.eval)
        trajectory = None if found is None or not len(found["steps"]) else summarize_rows(found["losses"])
        return PositionSummary(summarize_rows(losses), losses.mean(axis=0), trajectory)

    def nll(self, task: str) -> dict | None:
        """Per-problem bits per byte of the canonical solution (`eval/nll_<task>.jsonl`)."""
        return per_problem(self.files.eval / rundir.nll_name(task))

    def nll_metrics(self) -> list[str]:
        """`nll/<task>` for every task whose canonical-solution NLL was scored."""
        return [f"nll/{task}" for task in TASKS if (self.files.eval / rundir.nll_name(task)).exists()]

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
    def schedule_fraction(self) -> float | None:
        """A shorter-schedule control's fraction of its arm's steps (its study's tag), else None."""
        value = self.tags.get("schedule_fraction")
        return float(value) if value else None

    @cached_property
    def trunk_layers(self) -> int | None:
        """Layers of the shared trunk (Meta n keeps L - n), or None when not known here."""
        from harness.model.config import TrunkConfig

        cfg = self.objective_cfg
        try:
            return cfg.shared_layers(TrunkConfig.model_validate(self.recipe.get("model", {}))) if cfg else None
        except Exception:  # a record's model section this version cannot read: the depth is unknown
            return None

    @property
    def control_of(self) -> str | None:
        """The arm a negative control repeats (its study's `control_of`), else None."""
        return self.tags.get("control_of") or None

    @property
    def acceptance(self) -> dict | None:
        return rundir.read_json(self.files.eval / rundir.ACCEPTANCE)

    def acceptance_rows(self, depth: str, key: str = "agree_greedy") -> np.ndarray | None:
        """Per held-out row, depth `depth`'s rate (`key`: agree_greedy or correct) over the row's
        positions; None when the run scored no acceptance or predates per-row counts."""
        rows = ((self.acceptance or {}).get("depths", {}).get(depth) or {}).get("rows")
        if not rows or not rows.get(key):
            return None
        positions = rows.get("positions")
        # A record from elsewhere can hold anything: a rate over 0 positions would be NaN rows
        # that silently drop out of (or poison) a verdict.
        if isinstance(positions, bool) or not isinstance(positions, (int, float)) or not positions > 0:
            raise HarnessError(f"{self.files.eval / rundir.ACCEPTANCE}: depth {depth}'s per-row counts are over "
                               f"positions={positions!r}, not a positive number",
                               fix="score the run again (`harness run RECIPE --force evaluate`) or restore the file")
        return np.asarray(rows[key], dtype=np.float64) / float(positions)

    def prompt_tokens_per_step(self) -> np.ndarray | None:
        """Per decoding prompt, new tokens per step of self-speculative decoding; None when the
        run decoded none or predates per-prompt counts."""
        per = ((self.acceptance or {}).get("speculative") or {}).get("per_prompt")
        if not per or not per.get("steps"):
            return None
        return np.asarray(per["new_tokens"], dtype=np.float64) / np.maximum(np.asarray(per["steps"], dtype=np.float64), 1)

    @property
    def self_distilled(self) -> bool:
        """Trained on the checkpoint's own greedy continuations (`data.self_distill`)."""
        return bool((self.recipe.get("data") or {}).get("self_distill"))

    @property
    def init_from(self) -> str | None:
        """The checkpoint the run started from (`model.init_from`), or None."""
        return (self.recipe.get("model") or {}).get("init_from")

    @property
    def freeze(self) -> str:
        """What training left frozen (`train.freeze`): none, trunk or trunk_and_unembedding."""
        return (self.recipe.get("train") or {}).get("freeze") or "none"

    def val_curve(self, depth: str = "val/depth_1") -> list[tuple[float, float, float]]:
        """(tokens seen, training FLOPs spent, validation loss) at each evaluation step."""
        path = self.files.metrics
        if not path.exists():
            return []
        per_token = float(self.plan.get("flops_per_token", {}).get("total", 0.0))
        return [(r["tokens_seen"], r["tokens_seen"] * per_token, r[depth]) for r in rundir.read_jsonl(path)
                if depth in r and "tokens_seen" in r]


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run directory (or a committed record of one); refuse one whose training or
    evaluation has not finished, or whose files are not what the harness writes."""
    files = RunDir(Path(run_dir))
    stages = rundir.read_json(files.stages)
    if not isinstance(stages, dict) or not files.recipe.exists():
        raise HarnessError(f"{files.path} is not a harness run directory (no {rundir.STAGES} / {rundir.RECIPE})",
                           fix="pass directories made by `harness run` or `harness study`")
    missing = [s for s in ("train", "evaluate") if s not in stages]
    if missing:
        raise HarnessError(f"{files.path} has not finished (no {' or '.join(missing)} stage yet)",
                           fix="finish it first: `harness run RECIPE` or `harness study STUDY` resumes it")
    try:
        recipe = yaml.safe_load(files.recipe.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        recipe = exc
    if not isinstance(recipe, dict) or not isinstance(recipe.get("train", {}), dict):
        raise HarnessError(f"{files.recipe} is not a resolved recipe", fix="restore it from a copy of the run")
    summary = rundir.read_json(files.summary) or stages["evaluate"].get("outputs", {}).get("summary", {})
    plan, data = rundir.read_json(files.plan, default={}), rundir.read_json(files.data, default={})
    if not all(isinstance(x, dict) for x in (summary, plan, data)):
        raise HarnessError(f"{files.path}: {rundir.SUMMARY}, {rundir.PLAN} or {rundir.DATA} is not a JSON object",
                           fix="redo the stage that wrote it (`harness run RECIPE --force evaluate`)")
    tags = recipe.get("track", {}).get("tags", {})
    return RunRecord(
        run_dir=files.path, recipe=recipe, plan=plan, stages=stages, data=data, summary=summary,
        arm=tags.get("arm", recipe.get("name", files.name)), seed=int(tags.get("seed", recipe["train"].get("seed", 0))),
        tags=tags,
    )


def runs_of_experiment(experiment: str, study: str | None = None) -> list[RunRecord]:
    """Run directories recorded on an MLflow experiment's runs (optionally one study's)."""
    from harness.tracking.gateway import connect, tracking_uri

    uri = tracking_uri()
    try:
        client = connect(uri)
    except ConnectionError as exc:
        raise HarnessError(str(exc), fix="start it, set MLFLOW_TRACKING_URI, or pass the study file or run "
                                         "directories instead") from None
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
