"""The run directory's own tracking record (`RUN_DIR/track/`): keyed metrics, artifacts, state.

This is the durable copy that MLflow only indexes (DESIGN.md), so it must be exact after any
crash: every (metric, step) appears once. Rows are appended as training goes; a resume from
a checkpoint sets aside the training rows it is about to recompute (never the scores of the
stages after training, which belong to an export that is still there); a row whose keys
already exist for its step replaces them (a re-run evaluation). Nothing is deleted: replaced
rows go to `metrics.replaced.jsonl`. A torn last line (a crash or a full disk in the middle
of an append) is dropped with a warning, never read as data and never appended to.

Files:
    params.json, tags.json   what the MLflow run carries
    metrics.jsonl            {"step": s, "time_ms": t, name: value, ...} per line
    artifacts.jsonl          {"path": relative to the run directory, "artifact_dir": ...}
    state.json               run name, experiment, status, step reached, the record's id, and per
                             tracking store: its run id (`runs`), the effect under way
                             (`pending`) and the files uploaded to that run (`uploaded`)
                             (harness.tracking.effects is the state machine that keeps these)

A write the filesystem refuses (read-only, permission, space) is one line naming the file
(`fs_errors.RunDirError`), never mistaken for the tracking store's refusal.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Callable

from harness import rundir
from harness.atomic import atomic_write_text
from harness.errors import HarnessError
from harness.fs_errors import writing

REPLACED = rundir.METRICS_REPLACED  # rows set aside (a torn line, a replayed step): kept, never read as metrics
# Scores of the stages after training are logged under this prefix. A resume of training
# recomputes training's rows only: the export these scores were measured on is still there
# (a retrained model is exported and evaluated again, and its scores replace these).
AFTER_TRAINING = "eval/"


def training_key(key: str) -> bool:
    return not key.startswith(AFTER_TRAINING)


class TrackRecord:
    """Reads and writes RUN_DIR/track/; safe to use from one process at a time (the run lock)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / rundir.TRACK
        self._last_step: int | None = None

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict:
        state = rundir.read_json(self.dir / rundir.STATE, default={})
        if not isinstance(state, dict):
            raise HarnessError(f"{self.dir / rundir.STATE} is not a JSON object",
                               fix="restore it, or delete it to track the run afresh")
        return _migrate(state)

    def save_state(self, **update: Any) -> dict:
        state = {**self.state(), **update}
        with writing(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
            rundir.write_json(self.dir / rundir.STATE, state)
        return state

    def record_id(self) -> str:
        """This run directory's id, made once: every MLflow run of it carries it as a tag, so a
        run whose id a crash kept from being saved is found again instead of made twice."""
        state = self.state()
        return state.get("record_id") or self.save_state(record_id=uuid.uuid4().hex)["record_id"]

    # -- per tracking store ----------------------------------------------------------------
    def run_of(self, uri: str) -> str | None:
        return self.state().get("runs", {}).get(uri)

    def set_run(self, uri: str, run_id: str) -> None:
        state = self.state()
        self.save_state(runs={**state.get("runs", {}), uri: run_id}, run_id=run_id)

    def pending(self, uri: str) -> dict | None:
        """The effect on `uri` that was under way when the state was last written, if any."""
        return self.state().get("pending", {}).get(uri)

    def intend(self, uri: str, effect: dict | None) -> None:
        """Written before an effect on the store (None: nothing under way)."""
        pending = {k: v for k, v in self.state().get("pending", {}).items() if k != uri}
        self.save_state(pending={**pending, uri: effect} if effect else pending)

    def uploaded(self, uri: str, run_id: str) -> dict[str, str]:
        """artifact path -> sha256 of each file uploaded to that store's run `run_id`."""
        entry = self.state().get("uploaded", {}).get(uri, {})
        return entry.get("files", {}) if entry.get("run_id") == run_id else {}

    def mark_uploaded(self, uri: str, run_id: str, dest: str, sha: str) -> None:
        state = self.state()
        files = {**self.uploaded(uri, run_id), dest: sha}
        self.save_state(uploaded={**state.get("uploaded", {}), uri: {"run_id": run_id, "files": files}})

    # -- metrics ---------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        """Every metrics row, in order; a torn last line is left out (with a warning)."""
        return rundir.parse_jsonl(self.dir / rundir.METRICS, warn=True)[0]

    def repair(self) -> None:
        """Cut a torn last line off the file (kept in metrics.replaced.jsonl), so that the next
        append starts on a line of its own."""
        path = self.dir / rundir.METRICS
        if not path.exists():
            self._last_step = 0
            return
        rows, torn = rundir.parse_jsonl(path, warn=True)
        if torn is not None:
            self._append_raw(REPLACED, torn + "\n")
            self._rewrite(rows)
        self._last_step = max((r["step"] for r in rows), default=0)

    def append(self, step: int, values: dict[str, float], time_ms: int) -> None:
        """One row; keys this step already has are set aside first, so each key stays unique."""
        if self._last_step is None:
            self.repair()
        if step <= self._last_step:
            self.set_aside(lambda row: row["step"] == step, keys=set(values))
        self._append_raw(rundir.METRICS, rundir.jsonl_line({"step": step, "time_ms": time_ms, **values}))
        self._last_step = max(self._last_step, step)

    def set_aside(self, match: Callable[[dict], bool], keys: set[str] | Callable[[str], bool] | None = None) -> int:
        """Move matching rows (or only `keys` of them: a set, or a test on the name) to
        metrics.replaced.jsonl; returns how many rows."""
        path = self.dir / rundir.METRICS
        if not path.exists():
            return 0
        keep, moved = [], []
        taking = keys.__contains__ if isinstance(keys, (set, frozenset)) else keys
        for row in rundir.parse_jsonl(path, warn=True)[0]:
            if not match(row):
                keep.append(row)
                continue
            if keys is None:
                moved.append(row)
                continue
            taken = {k: v for k, v in row.items() if k not in ("step", "time_ms") and taking(k)}
            if taken:
                moved.append({"step": row["step"], "time_ms": row["time_ms"], **taken})
            rest = {k: v for k, v in row.items() if k not in taken}
            if set(rest) - {"step", "time_ms"}:
                keep.append(rest)
        if moved:
            self._append_raw(REPLACED, "".join(rundir.jsonl_line(r) for r in moved))
            self._rewrite(keep)
        self._last_step = max((r["step"] for r in keep), default=0)
        return len(moved)

    def set_aside_keys(self) -> set[tuple[str, int]]:
        """(metric, step) of every value kept in metrics.replaced.jsonl (torn text is skipped:
        what it held is exactly what is lost)."""
        path, out = self.dir / REPLACED, set()
        if not path.exists():
            return out
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "step" in row:
                out.update((k, row["step"]) for k in row if k not in ("step", "time_ms"))
        return out

    def restore(self, values: dict[tuple[str, int], tuple[float, int]]) -> None:
        """Put back values the record lost (a torn last line) from the one copy left, MLflow's:
        one row per step, keys the record lacks by construction."""
        self.repair()  # a torn last line is set aside first, so the rows start on a line of their own
        by_step: dict[int, dict] = {}
        for (key, step), (value, stamp) in sorted(values.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            by_step.setdefault(step, {"step": step, "time_ms": stamp})[key] = value
        self._append_raw(rundir.METRICS, "".join(rundir.jsonl_line(row) for row in by_step.values()))
        self._last_step = None  # recomputed on the next append

    def keyed(self) -> dict[tuple[str, int], tuple[float, int]]:
        """(metric, step) -> (value, time_ms); a later row wins (files from older versions)."""
        out = {}
        for row in self.rows():
            step, stamp = row["step"], row["time_ms"]
            for key, value in row.items():
                if key not in ("step", "time_ms"):
                    out[(key, step)] = (float(value), stamp)
        return out

    def _append_raw(self, name: str, text: str) -> None:
        with writing(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.dir / name, "a", encoding="utf-8") as handle:
                handle.write(text)

    def _rewrite(self, rows: list[dict]) -> None:
        with writing(self.dir):
            atomic_write_text(self.dir / rundir.METRICS, "".join(rundir.jsonl_line(r) for r in rows))

    # -- artifacts ---------------------------------------------------------------------------
    def add_artifact(self, path: Path, artifact_dir: str | None) -> None:
        """Recorded relative to the run directory (when inside it), so a moved run still finds it."""
        path = Path(path).resolve()
        try:
            stored = path.relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:
            stored = str(path)
        entry = {"path": stored, "artifact_dir": artifact_dir}
        if entry not in self.artifact_entries():
            self._append_raw(rundir.ARTIFACTS, rundir.jsonl_line(entry))

    def artifact_entries(self) -> list[dict]:
        return rundir.parse_jsonl(self.dir / rundir.ARTIFACTS, warn=True)[0]

    def artifacts(self) -> list[tuple[Path, str | None]]:
        """(path on this machine, MLflow artifact dir) of each recorded artifact, once each."""
        seen, out = set(), []
        for entry in self.artifact_entries():
            path = self.resolve(entry["path"])
            if (path, entry.get("artifact_dir")) not in seen:
                seen.add((path, entry.get("artifact_dir")))
                out.append((path, entry.get("artifact_dir")))
        return out

    def artifact_files(self) -> list[tuple[Path, str | None, str]]:
        """Each recorded artifact as files: (file, MLflow artifact dir, path in the run's
        artifacts). A folder is its files, under its own name, as MLflow lays one out; a
        recorded path that is gone is (path, dir, None)."""
        out = []
        for path, artifact_dir in self.artifacts():
            prefix = f"{artifact_dir}/" if artifact_dir else ""
            if path.is_file():
                out.append((path, artifact_dir, f"{prefix}{path.name}"))
            elif path.is_dir():
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    inner = file.relative_to(path.parent).parent.as_posix()
                    out.append((file, f"{prefix}{inner}", f"{prefix}{inner}/{file.name}"))
            else:
                out.append((path, artifact_dir, None))
        return out

    def resolve(self, recorded: str) -> Path:
        """A recorded path: relative ones start at the run directory; absolute ones recorded by
        older versions are re-rooted at the run directory when they run through its name."""
        path = Path(recorded)
        if not path.is_absolute():
            return self.run_dir / path
        parts = path.parts
        if not path.exists() and self.run_dir.name in parts:
            return self.run_dir.joinpath(*parts[len(parts) - parts[::-1].index(self.run_dir.name):])
        return path


def _migrate(state: dict) -> dict:
    """State files from before one run id per tracking store: live_* and synced_uri."""
    if "runs" in state:
        return state
    runs = {}
    if state.get("live_run_id") and state.get("live_uri"):
        runs[state["live_uri"]] = state["live_run_id"]
    if state.get("synced_uri") and state.get("run_id"):
        runs[state["synced_uri"]] = state["run_id"]
    return {**{k: v for k, v in state.items() if k not in ("live_run_id", "live_uri", "synced_uri")}, "runs": runs}

