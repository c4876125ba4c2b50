"""`harness run`: plan -> data -> train -> export -> evaluate -> track, in one run directory.

The run directory is `runs/<name>-<hash of the training sections>/`, so changing how a run
is evaluated or tracked reuses its training. Each stage records the hash of its inputs in
`stages.json`; a stage whose inputs are unchanged (and whose outputs are still there) is
skipped, `--force STAGE` redoes it (setting aside, never deleting, what it made before).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.atomic import atomic_write_text
from harness.errors import HarnessError
from harness.hashing import sha256_file, sha256_parts
from harness.recipe import TRAINING_SECTIONS, Recipe, load_recipe, recipe_hash, resolved_yaml

STAGES = ("plan", "data", "train", "export", "evaluate", "track")


def run_dir_for(recipe: Recipe, runs_root: Path) -> Path:
    return Path(runs_root) / f"{recipe.name}-{recipe_hash(recipe, TRAINING_SECTIONS)[:12]}"


class Ledger:
    """stages.json: for each stage, the hash of its inputs, its outputs and its duration."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "stages.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def fresh(self, stage: str, inputs: str) -> dict | None:
        entry = self.data.get(stage)
        return entry["outputs"] if entry and entry["inputs"] == inputs else None

    def record(self, stage: str, inputs: str, outputs: dict, seconds: float) -> None:
        self.data[stage] = {"inputs": inputs, "outputs": outputs, "seconds": round(seconds, 2),
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True))

    def forget(self, stage: str) -> None:
        self.data.pop(stage, None)


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    summary: dict


class Pipeline:
    """One `harness run`: construct, then `run()` the stages in order (torchtune's shape)."""

    def __init__(self, recipe_path: Path, overrides, runs_root: Path, force=(), console: Console | None = None):
        self._setup(load_recipe(recipe_path, overrides), Path(recipe_path), runs_root, force, console)

    @classmethod
    def from_recipe(cls, recipe: Recipe, recipe_path: Path, runs_root: Path, force=(),
                    console: Console | None = None) -> "Pipeline":
        """A pipeline for an already resolved recipe (a study's budgeted, tagged arm);
        `recipe_path` is the file it came from, whose directory anchors relative data paths."""
        pipeline = cls.__new__(cls)
        pipeline._setup(recipe, Path(recipe_path), runs_root, force, console)
        return pipeline

    def _setup(self, recipe: Recipe, recipe_path: Path, runs_root: Path, force, console) -> None:
        unknown = set(force) - set(STAGES)
        if unknown:
            raise HarnessError(f"--force {', '.join(sorted(unknown))}: no such stage; stages: {', '.join(STAGES)}")
        self.recipe_path = recipe_path
        self.recipe = recipe
        self.run_dir = run_dir_for(self.recipe, runs_root)
        self.force = set(force)
        self.console = console or Console(stderr=True)
        self.hash = recipe_hash(self.recipe)
        self.training_hash = recipe_hash(self.recipe, TRAINING_SECTIONS)

    def in_run(self, recorded: str) -> Path:
        """A path a stage recorded in the ledger. Stages record paths inside the run directory
        relative to it, so a run resumes and skips finished stages whatever the working
        directory and wherever the runs directory has moved; older ledgers held paths that
        run through the run directory's name, and are read the same way."""
        parts = Path(recorded).parts
        if self.run_dir.name in parts:
            parts = parts[parts.index(self.run_dir.name) + 1:]
        return self.run_dir.joinpath(*parts)

    def log(self, text: str) -> None:
        if self.dist.is_main:
            self.console.print(text)
            with open(self.run_dir / "logs" / "harness.log", "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def run(self) -> RunOutcome:
        from harness.train.distributed import barrier, init_distributed, rank_environment

        # One process needs no process group until training (DeepSpeed's import and init
        # cost seconds); under a launcher the ranks must agree from the first stage.
        self.dist = rank_environment()
        if self.dist.world_size > 1:
            init_distributed()
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        barrier()
        self.ledger = Ledger(self.run_dir)
        self.log(f"run directory {self.run_dir} (recipe sha256 {self.hash[:12]})")
        outputs = {}
        for stage in STAGES:
            outputs[stage] = getattr(self, f"_stage_{stage}")(outputs)
            if stage == "train" and not self.dist.is_main:
                break  # export, evaluation and tracking are rank 0's; the others are done
        return RunOutcome(self.run_dir, "finished", outputs)

    def _cached(self, stage: str, inputs: str, make, *, check=lambda out: True) -> dict:
        """Run `make()` unless the ledger has this stage with these inputs (and `check`)."""
        if stage in self.force:
            self._set_aside(stage)
            self.force.discard(stage)
        cached = self.ledger.fresh(stage, inputs)
        if cached is not None and check(cached):
            self.log(f"[dim]{stage}: inputs unchanged, skipped[/]")
            return cached
        started = time.perf_counter()
        out = make()
        if self.dist.is_main:
            self.ledger.record(stage, inputs, out, time.perf_counter() - started)
            self.log(f"{stage}: done in {time.perf_counter() - started:.1f} s")
        return out

    def _set_aside(self, stage: str) -> None:
        """--force: move the stage's products out of the way, keeping them."""
        self.ledger.forget(stage)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for name in {"train": ["checkpoints"], "export": ["export"], "evaluate": ["eval"]}.get(stage, []):
            path = self.run_dir / name
            if path.exists() and self.dist.is_main:
                path.rename(self.run_dir / f"{name}.forced-{stamp}")
                self.log(f"--force {stage}: kept the previous {name}/ as {name}.forced-{stamp}/")

    # -- stages -----------------------------------------------------------------------
    def _stage_plan(self, _) -> dict:
        from harness.compute import plan_arm
        from harness.provenance import environment, git_state, versions

        def make():
            if self.dist.is_main:
                (self.run_dir / "recipe.yaml").write_text(resolved_yaml(self.recipe))
                plan = plan_arm(self.recipe.name, self.recipe).as_dict()
                (self.run_dir / "plan.json").write_text(json.dumps(plan, indent=1))
                provenance = {"git": git_state(), "versions": versions(), "environment": environment(),
                              "recipe_path": str(self.recipe_path.resolve())}
                (self.run_dir / "provenance.json").write_text(json.dumps(provenance, indent=1, sort_keys=True))
            return {"recipe_hash": self.hash, "training_hash": self.training_hash}

        return self._cached("plan", self.hash, make)

    def _stage_data(self, _) -> dict:
        """Always asks the data module, whose own cache (keyed by every input) makes a
        repeat call instant; rank 0 prepares, the others then read the cache."""
        from harness.data.prepare import prepare_data
        from harness.train.distributed import barrier

        recipe, started = self.recipe, time.perf_counter()
        kwargs = dict(vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len, base_dir=self.recipe_path.parent)
        if self.dist.is_main:
            self.data = prepare_data(recipe.data, **kwargs)
        barrier()
        if not self.dist.is_main:
            self.data = prepare_data(recipe.data, **kwargs)
        out = {"manifest_hash": self.data.manifest_hash, "tokenizer_dir": str(self.data.tokenizer_dir)}
        if self.dist.is_main:
            (self.run_dir / "data.json").write_text(json.dumps(
                {**out, "manifest": self.data.manifest}, indent=1, sort_keys=True, default=str))
            inputs = sha256_parts(recipe.data.model_dump(mode="json"), kwargs["vocab_size"], kwargs["seq_len"])
            self.ledger.record("data", inputs, out, time.perf_counter() - started)
        return out

    def _tracker(self):
        from harness.provenance import run_tags
        from harness.track import Tracker, flatten

        if not hasattr(self, "tracker"):
            self.tracker = Tracker(self.run_dir, self.recipe.track, enabled=self.dist.is_main)
            if self.dist.is_main:
                tags = run_tags(self.hash, self.training_hash, self.dist.world_size)
                tags["harness.run_dir"] = str(self.run_dir.resolve())  # how `compare --experiment` finds it
                self.tracker.start(flatten(self.recipe.model_dump(mode="json")), tags, self.run_dir.name)
        return self.tracker

    def _stage_train(self, outputs) -> dict:
        from harness.train import checkpoint
        from harness.train.distributed import init_distributed
        from harness.train.loop import train

        identity = {"training_hash": self.training_hash, "manifest_hash": outputs["data"]["manifest_hash"]}

        def make():
            init_distributed()
            result = train(self.recipe, self.run_dir, self.data, self._tracker(), self.dist, identity)
            out = {"checkpoint": os.path.relpath(result.checkpoint, self.run_dir), "step": result.step,
                   "val": result.val}
            if result.status == "interrupted":
                if self.dist.is_main:
                    self._tracker().finish("KILLED")
                result.preemption.finish(self.dist.rank)  # requeue marker, barrier, exit
            return out

        return self._cached("train", sha256_parts(identity), make,
                            check=lambda out: checkpoint.verify(self.in_run(out["checkpoint"])) is None)

    def _stage_export(self, outputs) -> dict:
        ckpt = self.in_run(outputs["train"]["checkpoint"])
        inputs = sha256_parts(sha256_file(ckpt / "CHECKSUMS.json"), self.training_hash)

        def make():
            from harness.model import build_model
            from harness.model.export import export_hf
            from harness.train.weights import fp32_state_dict

            export = self.run_dir / "export"
            if self.dist.is_main:
                model = build_model(self.recipe.model, self.recipe.objective)
                model.load_state_dict(fp32_state_dict(ckpt, self.recipe.train.zero_stage))
                staging = self.run_dir / "export.tmp"
                shutil.rmtree(staging, ignore_errors=True)
                export_hf(model, staging, Path(outputs["data"]["tokenizer_dir"]))
                shutil.rmtree(export, ignore_errors=True)
                staging.rename(export)
            return {"dir": "export", "weights_sha256": sha256_file(export / "model.safetensors")}

        return self._cached("export", inputs, make, check=lambda out: (self.in_run(out["dir"]) / "model.safetensors").is_file())

    def _stage_evaluate(self, outputs) -> dict:
        """Validation loss per depth (from the end of training), then HumanEval/MBPP on the
        export through lm-eval and the sandbox (`eval.enabled`), then the analyses of the
        export on held-out data (`eval.per_position`, `eval.acceptance`; independent of
        `eval.enabled`)."""
        inputs = sha256_parts(outputs["export"]["weights_sha256"], self.recipe.eval.model_dump(mode="json"))
        export_dir = self.in_run(outputs["export"]["dir"])

        def make():
            out_dir = self.run_dir / "eval"
            summary = {"val": outputs["train"]["val"]}
            if self.dist.is_main:
                staging = self.run_dir / "eval.tmp"
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
                if self.recipe.eval.enabled:
                    from harness.eval.evaluate import evaluate_model

                    self.log(f"evaluate: {', '.join(self.recipe.eval.tasks)} ({self.recipe.eval.protocol} protocol)")
                    summary.update(evaluate_model(export_dir, self.recipe.eval, staging))
                if self.recipe.eval.per_position or self.recipe.eval.acceptance:
                    from harness.eval.analyze import analyze_export

                    self.log("evaluate: per-position loss, head acceptance, speculative decoding")
                    summary.update(analyze_export(export_dir, self.recipe, self.data, staging))
                if self.recipe.eval.probes:
                    from harness.eval.probes import evaluate_probes

                    self.log(f"evaluate: probes {', '.join(self.recipe.eval.probes)}")
                    summary.update(evaluate_probes(export_dir, self.recipe, self.data, staging))
                (staging / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
                if out_dir.exists():
                    shutil.rmtree(out_dir)
                staging.rename(out_dir)
                # Logged here, once per evaluation, not by the track stage (which re-runs
                # when only tags change); validation losses were logged by training.
                scores = {f"eval/{k}": float(v) for k, v in summary.items()
                          if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)}
                if scores:
                    self._tracker().log_metrics(scores, outputs["train"]["step"])
            return {"dir": "eval", "summary": summary}

        return self._cached("evaluate", inputs, make, check=lambda out: (self.in_run(out["dir"]) / "summary.json").is_file())

    def _stage_track(self, outputs) -> dict:
        """Plots and artifacts to MLflow, and the run closed (kept for `harness sync` when offline)."""
        inputs = sha256_parts({k: v for k, v in outputs.items() if k != "track"})

        def make():
            if not self.dist.is_main:
                return {}
            from harness.report.curves import plot_run_losses

            tracker = self._tracker()
            plot = plot_run_losses(self.run_dir / "track" / "metrics.jsonl", self.run_dir / "plots")
            for name in ("recipe.yaml", "plan.json", "provenance.json", "data.json", "stages.json", "eval", "logs"):
                if (self.run_dir / name).exists():
                    tracker.log_artifact(self.run_dir / name)
            for path in plot:
                tracker.log_artifact(path, "plots")
            tracker.finish("FINISHED")
            return {"mlflow_run_id": tracker.run_id, "synced": tracker.problem is None and tracker.run_id is not None,
                    "offline_reason": tracker.problem}

        return self._cached("track", inputs, make, check=lambda out: out.get("synced", False))
