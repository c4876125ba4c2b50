"""`harness run`: plan -> data -> train -> export -> evaluate -> track, in one run directory.

The run directory is `runs/<name>-<hash of the training sections>/`, so changing how a run
is evaluated or tracked reuses its training. Each stage records the hash of its inputs in
`stages.json`; a stage whose inputs are unchanged (and whose outputs are still there) is
skipped, `--force STAGE` redoes it (setting aside, never deleting, what it made before). A
stage's outputs are read back before they are trusted: one that is gone or does not parse is
redone, never skipped on the strength of the ledger alone.

What holds whatever happens (README "What a run is"):
- one process writes a run directory at a time (`run.lock`; a second run refuses);
- SIGUSR1/SIGTERM in any stage exit 75 and leave the preemption marker (SIGINT: 130), with
  nothing half made: training checkpoints the step, the other stages drop their staging
  folder (evaluation keeps its finished part and resumes from it);
- a failure closes the MLflow run as FAILED; a run directory this command created is removed
  again if it failed before training started; a full disk, a read-only mount or a directory
  this user may not write is one line naming the path and the fix;
- the MLflow run is closed FINISHED by the track stage, which is never skipped while the
  record is open (a resumed training reopens it even when the later stages are skipped).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness import devices, rundir
from harness.atomic import atomic_write_text, is_disk_full, publish_dir
from harness.errors import HarnessError
from harness.fs_errors import explain, filesystem_error
from harness.hashing import sha256_file, sha256_parts
from harness.launch.preemption import Preemption, Stopped
from harness.recipe import TRAINING_SECTIONS, Recipe, hashed_dump, load_recipe, recipe_hash, resolved_yaml
from harness.run.lock import RunLock
from harness.rundir import Ledger, RunDir

STAGES = ("plan", "data", "train", "export", "evaluate", "track")  # in order; Pipeline.stages() maps each to its method


def run_dir_for(recipe: Recipe, runs_root: Path) -> Path:
    return Path(runs_root) / f"{recipe.name}-{recipe_hash(recipe, TRAINING_SECTIONS)[:12]}"


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    summary: dict


class Pipeline:
    """One `harness run`: construct, then `run()` the stages in order (torchtune's shape)."""

    def __init__(self, recipe_path: Path, overrides, runs_root: Path, force=(), console: Console | None = None, *,
                 verify: bool = False, relative_to: Path | None = None):
        self._setup(load_recipe(recipe_path, overrides, base_dir=relative_to), Path(recipe_path), runs_root, force,
                    console, verify=verify, relative_to=relative_to)

    @classmethod
    def from_recipe(cls, recipe: Recipe, recipe_path: Path, runs_root: Path, force=(),
                    console: Console | None = None, *, verify: bool = False) -> "Pipeline":
        """A pipeline for an already resolved recipe (a study's budgeted, tagged arm);
        `recipe_path` is the file it came from, whose directory anchors relative data paths."""
        pipeline = cls.__new__(cls)
        pipeline._setup(recipe, Path(recipe_path), runs_root, force, console, verify=verify)
        return pipeline

    def _setup(self, recipe: Recipe, recipe_path: Path, runs_root: Path, force, console, *,
               verify: bool = False, relative_to: Path | None = None) -> None:
        """`verify`: re-hash corpus files and checkpoints instead of trusting recorded sizes and
        mtimes. `relative_to`: where relative paths in the recipe start (default: its directory;
        a Slurm job's copy of the recipe names the original's)."""
        unknown = set(force) - set(STAGES)
        if unknown:
            raise HarnessError(f"--force {', '.join(sorted(unknown))}: no such stage; stages: {', '.join(STAGES)}")
        self.recipe_path = recipe_path
        self.base_dir = Path(relative_to) if relative_to is not None else recipe_path.parent
        self.verify = verify
        self.stage = "plan"
        self.alone = False  # True once the other ranks have left (rank 0's stages after training)
        self.recipe = recipe
        self.run_dir = run_dir_for(self.recipe, runs_root)
        self.files = RunDir(self.run_dir)
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
        if not self.dist.is_main:
            return
        self.console.print(text)
        try:
            with open(self.files.log, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        except OSError as exc:  # a full disk must not hide the message itself, printed above
            self.console.print(f"(not written to logs/harness.log: {exc.strerror or exc})")

    def run(self) -> RunOutcome:
        from harness.eval.benchmarks.lmeval import check_backend
        from harness.ranks import barrier, rank_environment
        from harness.train.distributed import init_distributed

        # One process needs no process group until training (DeepSpeed's import and init
        # cost seconds); under a launcher the ranks must agree from the first stage. The
        # device is chosen (or a CPU fallback refused) before anything is prepared.
        self.dist = rank_environment()
        self.device = devices.choose(self.recipe.train.precision, self.dist.world_size, self.dist.local_rank)
        check_backend(self.recipe.eval)  # before training, not after it
        if self.dist.world_size > 1:
            init_distributed(self.recipe.train.precision)
        created = not self.run_dir.exists()
        lock = self._lock()
        try:
            # Signals outside the training loop (which checkpoints first) stop the stage at once.
            with Preemption(raising=True):
                self.files.logs.mkdir(parents=True, exist_ok=True)
                barrier()
                self.ledger = Ledger(self.run_dir)
                self.log(f"run directory {self.run_dir} (recipe sha256 {self.hash[:12]})")
                return self._run_stages()
        except Stopped as stop:
            self._stopped(stop.preemption)
        except SystemExit:
            raise  # the training loop's own preemption exit, already handled
        except Exception as exc:
            self._failed(exc, created)
            raise
        finally:
            if lock is not None:
                lock.release()

    def _lock(self) -> RunLock | None:
        """Rank 0 holds the run directory's lock; every rank learns whether it got it."""
        from harness.ranks import main_decides

        lock = RunLock(self.run_dir) if self.dist.is_main else None
        main_decides(lambda: lock.acquire(log=self.console.print), is_main=self.dist.is_main)
        return lock

    def stages(self) -> list[tuple[str, object]]:
        """The stages in the order they run, each with the method that runs it."""
        return [("plan", self._stage_plan), ("data", self._stage_data), ("train", self._stage_train),
                ("export", self._stage_export), ("evaluate", self._stage_evaluate), ("track", self._stage_track)]

    def _run_stages(self) -> RunOutcome:
        outputs = {}
        last_shared = "evaluate" if self._shared_scoring() else "train"
        for stage, run_stage in self.stages():
            self.stage = stage
            outputs[stage] = run_stage(outputs)
            if stage == last_shared and not self.dist.is_main:
                break  # the rest (export, analyses, tracking) is rank 0's; the others are done
            if stage == last_shared and self.dist.world_size > 1:
                self.alone = True  # the other ranks have left: no barrier from here on
        return RunOutcome(self.run_dir, "finished", outputs)

    def _shared_scoring(self) -> bool:
        """Every rank stays for HumanEval/MBPP and generates its share of the problems
        (`evaluate.shards_over`: the hf backend, at least one problem per rank); rank 0 exports
        while the others wait (within the collective timeout, `train.distributed`), and alone
        makes the analyses and the record."""
        from harness.eval.benchmarks.evaluate import shards_over

        return shards_over(self.recipe.eval, self.dist.world_size)

    def _stopped(self, preemption: Preemption) -> None:
        """A signal outside the training loop: close the run as KILLED, exit 75 (130 for ^C)."""
        name = preemption.received.name if preemption.received else "a stop request"
        self.log(f"stopped by {name} during the {self.stage} stage; nothing half made is kept; "
                 "run the same command again to resume")
        if self.dist.is_main and getattr(self, "tracker", None) is not None:
            self.tracker.finish("KILLED")
        # After training no rank writes anything another rank's exit could cut short (rank 0
        # exports and evaluates into staging folders, kept only when whole), and the ranks of a
        # shared evaluation may each be inside a different collective when the signal lands:
        # a barrier there could pair with the wrong one and hang. So only the stages up to
        # training wait for every rank before exiting.
        shared_stage = self.stage in ("plan", "data", "train")
        preemption.finish(self.dist.rank, wait_for_ranks=not self.alone and shared_stage)

    def _failed(self, exc: Exception, created: bool) -> None:
        """Close the MLflow run as FAILED; drop a run directory this command made before any
        training; say a full disk in one line."""
        if not self.dist.is_main:
            return
        if getattr(self, "tracker", None) is not None:
            try:
                self.tracker.finish("FAILED")
            except (OSError, HarnessError) as closing:  # a full or read-only disk refuses this write too
                self.console.print(f"(the tracking record could not be closed: {closing}; `harness sync` closes it)")
        if created and self.stage in ("plan", "data"):
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.console.print(f"the {self.stage} stage failed; removed the run directory it had started, {self.run_dir}")
        if isinstance(exc, HarnessError):
            return
        refused = filesystem_error(exc)  # read-only, permission, space, quota: the machine's state
        if refused is not None:
            raise explain(refused, self.run_dir, stage=self.stage) from None
        if is_disk_full(exc):  # torch's zip writer says so in a RuntimeError, without an errno
            raise HarnessError(f"no space left on {self.run_dir} (the {self.stage} stage stopped; finished stages and "
                               "the last good checkpoint are kept)",
                               fix="free space there and run the same command again") from None

    def _readable(self, stage: str, *paths: Path) -> bool:
        """A cached stage's outputs still there and parsing (JSON files); else it is redone."""
        for path in paths:
            try:
                ok = path.is_file() and (path.suffix != ".json" or isinstance(rundir.read_json(path), dict))
            except HarnessError:
                ok = False
            if not ok:
                self.log(f"{stage}: {path} is missing or unreadable: not trusted, made again")
                return False
        return True

    def _cached(self, stage: str, inputs: str, make, *, check=lambda out: True) -> dict:
        """Run `make()` unless the ledger has this stage with these inputs (and `check`)."""
        if stage in self.force:
            self._set_aside(stage)
            self.force.discard(stage)
        # Rank 0 decides for every rank: a stage whose work is shared (collectives inside
        # `make`) must be skipped by all or by none, and the other ranks could otherwise read
        # the ledger after rank 0 recorded the stage they have not started.
        cached = self._rank0_decides(lambda: self._fresh(stage, inputs, check))
        if cached is not None:
            self.log(f"[dim]{stage}: inputs unchanged, skipped[/]")
            return cached
        started = time.perf_counter()
        out = make()
        if self.dist.is_main:
            self.ledger.record(stage, inputs, out, time.perf_counter() - started)
            self.log(f"{stage}: done in {time.perf_counter() - started:.1f} s")
        return out

    def _rank0_decides(self, work, what: str = "rank 0"):
        """`ranks.main_decides(work)` while every rank is here; `work()` once rank 0 is alone
        (a broadcast then would wait for ranks that have left)."""
        from harness.ranks import main_decides

        return work() if self.alone else main_decides(work, is_main=self.dist.is_main, what=what)

    def _fresh(self, stage: str, inputs: str, check) -> dict | None:
        cached = self.ledger.fresh(stage, inputs)
        return cached if cached is not None and check(cached) else None

    def _set_aside(self, stage: str) -> None:
        """--force: move the stage's products out of the way, keeping them."""
        self.ledger.forget(stage)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for name in {"train": [rundir.CHECKPOINTS], "export": [rundir.EXPORT], "evaluate": [rundir.EVAL]}.get(stage, []):
            path = self.run_dir / name
            if path.exists() and self.dist.is_main:
                path.rename(self.run_dir / f"{name}.forced-{stamp}")
                self.log(f"--force {stage}: kept the previous {name}/ as {name}.forced-{stamp}/")

    # -- stages -----------------------------------------------------------------------
    def _stage_plan(self, _) -> dict:
        from harness.plan.arms import plan_arm
        from harness.run.provenance import environment, git_state, versions

        def make():
            if self.dist.is_main:
                atomic_write_text(self.files.recipe, resolved_yaml(self.recipe))
                rundir.write_json(self.files.plan, plan_arm(self.recipe.name, self.recipe).as_dict())
                provenance = {"git": git_state(), "versions": versions(), "environment": environment(),
                              "recipe_path": str(self.recipe_path.resolve()), "base_dir": str(self.base_dir.resolve())}
                rundir.write_json(self.files.provenance, provenance)
            return {"recipe_hash": self.hash, "training_hash": self.training_hash}

        return self._cached("plan", self.hash, make, check=lambda out: not self.dist.is_main or self._readable(
            "plan", self.files.recipe, self.files.plan, self.files.provenance))

    def _stage_data(self, _) -> dict:
        """Always asks the data module, whose own cache (keyed by every input) makes a
        repeat call instant; rank 0 prepares (and hashes), the others read its manifest."""
        from harness.data.prepare import prepare_data_on_ranks

        recipe, started = self.recipe, time.perf_counter()
        self.data = prepare_data_on_ranks(recipe.data, self.dist, vocab_size=recipe.model.vocab_size,
                                          seq_len=recipe.seq_len, base_dir=self.base_dir, verify=self.verify)
        out = {"manifest_hash": self.data.manifest_hash, "tokenizer_dir": str(self.data.tokenizer_dir)}
        self.distilled, made = None, {}
        if recipe.data.self_distill is not None:
            made = self._self_distill()
            # Whether the cache had it goes to data.json only: the ledger's outputs feed the
            # track stage's inputs, which a rerun that found its own data must not change.
            out["self_distill"] = {k: v for k, v in made.items() if k != "reused"}
            self.distilled = Path(made["path"])
        if self.dist.is_main:
            rundir.write_json(self.files.data, {**out, **({"self_distill": made} if made else {}),
                                                "manifest": self.data.manifest})
            inputs = sha256_parts(hashed_dump(recipe)["data"], recipe.model.vocab_size, recipe.seq_len)
            self.ledger.record("data", inputs, out, time.perf_counter() - started)
        return out

    def _self_distill(self) -> dict:
        """`data.self_distill`: the checkpoint's continuations of the training windows (rank 0
        makes them, or finds them in the cache; the others read the folder it names)."""
        from harness.ranks import main_decides
        from harness.train.self_distill import self_distill

        init_dir = self._init_dir()
        made = main_decides(lambda: self_distill(self.recipe, self.data, init_dir, self._init_weights(init_dir),
                                                 self.device, log=self.log),
                            is_main=self.dist.is_main, what="rank 0 making the self-distillation data")
        self.log(f"data: self-distilled training windows {made['path']} ({made['windows']} windows, "
                 + ("reused" if made["reused"] else f"made in {made['seconds']} s") + ")")
        return made

    def _init_weights(self, init_dir: Path) -> str:
        """The fingerprint of the checkpoint `model.init_from` names (sizes and mtimes trusted
        as data preparation trusts them, unless --verify)."""
        from harness.data.prepare import FileHashes, default_cache_root
        from harness.model.pretrained_config import weights_identity

        hashes = FileHashes(default_cache_root() / "file-hashes.json", verify=self.verify)
        identity = weights_identity(init_dir, hashes.sha256)
        hashes.save()
        return identity

    def _tracker(self):
        from harness.run.provenance import run_tags
        from harness.tracking.tracker import Tracker, flatten

        if getattr(self, "tracker", None) is None:
            tracker = Tracker(self.run_dir, self.recipe.track, enabled=self.dist.is_main)
            if self.dist.is_main:
                tags = run_tags(self.hash, self.training_hash, self.dist.world_size)
                tags["harness.run_dir"] = str(self.run_dir.resolve())  # how `compare --experiment` finds it
                tracker.start(flatten(hashed_dump(self.recipe)), tags, self.run_dir.name)
            self.tracker = tracker
        return self.tracker

    def _init_dir(self) -> Path | None:
        """The pretrained model `model.init_from` names (relative to the recipe's directory)."""
        from harness.model.pretrained_config import missing_dir_error, resolve_dir

        init_from = self.recipe.model.init_from
        if init_from is None:
            return None
        directory = resolve_dir(self.base_dir, init_from)
        if not directory.is_dir():
            raise missing_dir_error(init_from, directory)
        return directory

    def _stage_train(self, outputs) -> dict:
        from harness.train import checkpoint
        from harness.train.distributed import init_distributed
        from harness.train.loop import train

        identity = {"training_hash": self.training_hash, "manifest_hash": outputs["data"]["manifest_hash"]}
        init_dir = self._init_dir()
        if init_dir is not None:  # a run resumes only from the weights it started from
            identity["init_weights"] = self._init_weights(init_dir)
        if "self_distill" in outputs["data"]:  # and on the distilled rows it started on
            identity["self_distill"] = outputs["data"]["self_distill"]["key"]

        def make():
            init_distributed(self.recipe.train.precision)
            result = train(self.recipe, self.run_dir, self.data, self._tracker(), self.dist, identity,
                           verify=self.verify, init_dir=init_dir, distilled=self.distilled)
            out = {"checkpoint": os.path.relpath(result.checkpoint, self.run_dir), "step": result.step,
                   "val": result.val}
            if result.status == "interrupted":
                if self.dist.is_main:
                    self._tracker().finish("KILLED")
                result.preemption.finish(self.dist.rank)  # requeue marker, barrier, exit
            return out

        return self._cached("train", sha256_parts(identity), make,
                            check=lambda out: checkpoint.verify(self.in_run(out["checkpoint"]), full=self.verify) is None)

    def _stage_export(self, outputs) -> dict:
        ckpt = self.in_run(outputs["train"]["checkpoint"])
        inputs = sha256_parts(sha256_file(ckpt / "CHECKSUMS.json"), self.training_hash)

        def export_model() -> dict:  # rank 0's work
            from harness.model.export import export_hf
            from harness.model.mtp_model import build_model
            from harness.train.weights import fp32_state_dict

            export, train = self.files.export, self.recipe.train
            model = build_model(self.recipe.model, self.recipe.objective)
            state = fp32_state_dict(ckpt, train.zero_stage, train.precision)
            if self.recipe.model.init_from is not None and train.freeze != "none":
                from harness.model.pretrained import frozen_from_checkpoint

                state = frozen_from_checkpoint(model, state, self._init_dir(), train.freeze)
            model.load_state_dict(state)
            staging = self.run_dir / rundir.EXPORT_STAGING
            shutil.rmtree(staging, ignore_errors=True)
            try:
                export_hf(model, staging, Path(outputs["data"]["tokenizer_dir"]))
            except BaseException:  # a signal or a full disk: no half-written export stays
                shutil.rmtree(staging, ignore_errors=True)
                raise
            publish_dir(staging, export, replace=True)
            return {"dir": rundir.EXPORT, "weights_sha256": sha256_file(export / rundir.EXPORT_WEIGHTS)}

        def make():  # the other ranks, if they stay to share the evaluation, wait for rank 0's export
            return self._rank0_decides(export_model, what="rank 0 exporting the model")

        return self._cached("export", inputs, make, check=lambda out: self._readable(
            "export", self.in_run(out["dir"]) / rundir.EXPORT_WEIGHTS, self.in_run(out["dir"]) / "config.json"))

    def _stage_evaluate(self, outputs) -> dict:
        """Validation loss per depth (from the end of training), then HumanEval/MBPP on the
        export through lm-eval and the sandbox (`eval.enabled`), then the analyses of the
        export (and of the kept checkpoints) on held-out data (`eval/analyze.py`: reference
        losses always; per-position loss, its trajectory, canonical-solution NLL and acceptance
        as `eval` asks), then the collapse check (`eval/collapse.py`). Work happens in
        `eval.tmp/`, stamped with the stage's inputs: after a signal or a crash, finished
        HumanEval/MBPP scores there are kept and not redone."""
        inputs = sha256_parts(outputs["export"]["weights_sha256"], self.recipe.eval.model_dump(mode="json"))
        export_dir = self.in_run(outputs["export"]["dir"])

        def make():
            summary = {"val": outputs["train"]["val"]}
            if not self.dist.is_main:  # here only to generate a share of HumanEval/MBPP
                self._scores(export_dir, self.run_dir / rundir.EVAL_STAGING)
            else:
                staging = self._eval_staging(inputs)
                summary.update(self._scores(export_dir, staging))
                from harness.eval.analyses.analyze import analyze_export
                from harness.eval.analyses.collapse import collapse_reasons

                self.log(f"evaluate: {', '.join(self._analyses())}")
                summary.update(analyze_export(export_dir, self.recipe, self.data, staging, self.run_dir,
                                              device=self.device))
                if self.recipe.eval.probes:
                    from harness.eval.probes import evaluate_probes

                    self.log(f"evaluate: probes {', '.join(self.recipe.eval.probes)}")
                    summary.update(evaluate_probes(export_dir, self.recipe, self.data, staging))
                summary["collapse"] = collapse_reasons(
                    summary["val"], summary.get("position/loss_mean"), summary.get("reference/unigram"),
                    deeper_depths_are_harder=self.recipe.objective.deeper_depths_are_harder)
                summary["collapse/flagged"] = float(bool(summary["collapse"]))
                for reason in summary["collapse"]:
                    self.log(f"[bold red]collapsed:[/] {reason}; its gains are not interpretable")
                rundir.write_json(staging / rundir.SUMMARY, summary)
                (staging / rundir.INPUTS_STAMP).unlink()
                publish_dir(staging, self.files.eval, replace=True)
                # Logged here, once per evaluation, not by the track stage (which re-runs
                # when only tags change); validation losses were logged by training.
                from harness.tracking.record import AFTER_TRAINING

                scores = {f"{AFTER_TRAINING}{k}": float(v) for k, v in summary.items()
                          if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)}
                if scores:
                    self._tracker().log_metrics(scores, outputs["train"]["step"])
                self._tracker().set_tags({"harness.collapsed": str(bool(summary["collapse"])).lower(),
                                          "harness.collapse_reason": "; ".join(summary["collapse"])[:4000]})
            return {"dir": rundir.EVAL, "summary": summary}

        return self._cached("evaluate", inputs, make,
                            check=lambda out: self._readable("evaluate", self.in_run(out["dir"]) / rundir.SUMMARY))

    def _eval_staging(self, inputs: str) -> Path:
        """eval.tmp/, kept from an interrupted evaluation with the same inputs, else made afresh."""
        staging = self.run_dir / rundir.EVAL_STAGING
        stamp = staging / rundir.INPUTS_STAMP
        if not (stamp.is_file() and stamp.read_text() == inputs):
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            atomic_write_text(stamp, inputs)
        return staging

    def _scores(self, export_dir: Path, staging: Path) -> dict:
        """HumanEval/MBPP (evaluate_model writes its summary.json last, so its presence in the
        staging folder means the scores of an interrupted attempt are complete)."""
        if not self.recipe.eval.enabled or not self.recipe.eval.tasks:
            return {}  # nothing to generate: no sandbox is opened, so no sandbox facts are reported
        from harness.eval.benchmarks.evaluate import evaluate_model

        done = staging / rundir.SUMMARY
        shared = self.dist.world_size > 1 and not self.alone  # every rank is here (`_shared_scoring`)
        if self._rank0_decides(lambda: done.is_file() and self._readable("evaluate", done)):
            self.log("evaluate: HumanEval/MBPP scores of the interrupted attempt are complete; kept")
            return rundir.read_json(done) if self.dist.is_main else {}
        ranks = f", shared by {self.dist.world_size} ranks" if shared else ""
        self.log(f"evaluate: {', '.join(self.recipe.eval.tasks)} ({self.recipe.eval.protocol} protocol{ranks})")
        return evaluate_model(export_dir, self.recipe.eval, staging, device=self.device, shard=shared) or {}

    def _analyses(self) -> list[str]:
        """The analyses this evaluation writes (what the log promises is what is made)."""
        cfg, extra = self.recipe.eval, self.recipe.objective.n_predict > 1
        wanted = [("reference losses", True), ("per-position loss", cfg.per_position),
                  ("per-position loss along training", cfg.trajectory),
                  ("canonical-solution NLL", cfg.canonical_nll and bool(cfg.tasks)), ("acceptance", cfg.acceptance and extra)]
        return [name for name, on in wanted if on]

    def _stage_track(self, outputs) -> dict:
        """Plots and artifacts to MLflow, and the run closed (kept for `harness sync` when offline)."""
        from harness.tracking.tracker import closed

        inputs = sha256_parts({k: v for k, v in outputs.items() if k != "track"})

        def make():
            if not self.dist.is_main:
                return {}
            from harness.run.curves import plot_run_losses

            tracker = self._tracker()
            plot = plot_run_losses(self.files.metrics, self.files.plots)
            for name in (rundir.RECIPE, rundir.PLAN, rundir.PROVENANCE, rundir.DATA, rundir.STAGES, rundir.EVAL,
                         rundir.LOGS):
                if (self.run_dir / name).exists():
                    tracker.log_artifact(self.run_dir / name)
            for path in plot:
                tracker.log_artifact(path, "plots")
            tracker.finish("FINISHED")
            synced = tracker.problem is None and tracker.run_id is not None and not tracker.conflicts
            problem = tracker.problem or (f"MLflow run {tracker.run_id} disagrees with the run directory"
                                          if tracker.conflicts else None)
            return {"mlflow_run_id": tracker.run_id, "synced": synced, "offline_reason": problem}

        # Fresh only while the record is closed FINISHED in the store in use: a training that
        # resumed (a corrupt newest checkpoint) reopened it, and only this stage closes it.
        return self._cached("track", inputs, make, check=lambda out: self.dist.is_main and closed(self.run_dir))
