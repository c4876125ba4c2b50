"""The run directory: the one place its layout and file names are written down, its stage
ledger, and how the JSON and JSONL files in it are read and written.

Every module that reads or writes a run directory asks this one for the path; a record
committed with a study (`report/records.py`) is a run directory cut down to some of these
files, read by the same code. The ground floor: it imports nothing of the harness but
errors and atomic writes, so every floor above may use it.

One policy for JSON Lines, wherever they are read: a last line without its newline is a
write that was cut short (a crash, a full disk) and is left out with a warning; a bad line
anywhere else is damage, refused with the file, the line and the fix. A JSON file that does
not parse is refused the same way, never read as empty.

    recipe.yaml  plan.json  provenance.json  data.json  stages.json  run.lock
    checkpoints/step_N/  export/  logs/harness.log  plots/
    eval/   summary.json, per_position.npy, per_position_trajectory.npz, acceptance.json,
            nll_<task>.jsonl, <task>_<variant>.jsonl, <probe>_greedy.jsonl, lm_eval/,
            position_summary/ (in committed records, instead of the two arrays)
    track/  params.json, tags.json, state.json, metrics.jsonl, metrics.replaced.jsonl, artifacts.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text
from harness.errors import HarnessError

RECIPE, PLAN, PROVENANCE, DATA, STAGES, LOCK = (
    "recipe.yaml", "plan.json", "provenance.json", "data.json", "stages.json", "run.lock")
CHECKPOINTS, EXPORT, EVAL, TRACK, LOGS, PLOTS = "checkpoints", "export", "eval", "track", "logs", "plots"
EXPORT_STAGING, EVAL_STAGING, LOG = "export.tmp", "eval.tmp", "harness.log"
SUMMARY, PER_POSITION, TRAJECTORY, ACCEPTANCE = (
    "summary.json", "per_position.npy", "per_position_trajectory.npz", "acceptance.json")
POSITION_SUMMARY = "position_summary"  # a folder of .npy files (deterministic bytes, unlike .npz)
METRICS, PARAMS, TAGS, STATE = "metrics.jsonl", "params.json", "tags.json", "state.json"
ARTIFACTS, METRICS_REPLACED = "artifacts.jsonl", "metrics.replaced.jsonl"


def nll_name(task: str) -> str:
    """Per-problem canonical-solution NLL of one task, in eval/."""
    return f"nll_{task}.jsonl"


def samples_name(task: str, variant: str) -> str:
    """Per-sample pass/fail of one task and decoding variant (`greedy`, `t0.2`), in eval/."""
    return f"{task}_{variant}.jsonl"


def probe_name(probe: str) -> str:
    """Per-example rows of one synthetic probe, in eval/."""
    return f"{probe}_greedy.jsonl"


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory (or one committed record of it)."""

    path: Path

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recipe(self) -> Path:
        return self.path / RECIPE

    @property
    def plan(self) -> Path:
        return self.path / PLAN

    @property
    def provenance(self) -> Path:
        return self.path / PROVENANCE

    @property
    def data(self) -> Path:
        return self.path / DATA

    @property
    def stages(self) -> Path:
        return self.path / STAGES

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def export(self) -> Path:
        return self.path / EXPORT

    @property
    def eval(self) -> Path:
        return self.path / EVAL

    @property
    def track(self) -> Path:
        return self.path / TRACK

    @property
    def logs(self) -> Path:
        return self.path / LOGS

    @property
    def log(self) -> Path:
        return self.path / LOGS / LOG

    @property
    def plots(self) -> Path:
        return self.path / PLOTS

    @property
    def summary(self) -> Path:
        return self.eval / SUMMARY

    @property
    def metrics(self) -> Path:
        return self.track / METRICS


class Ledger:
    """stages.json: for each stage, the hash of its inputs, its outputs and its duration."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / STAGES
        self.data = read_json(self.path, default={})

    def fresh(self, stage: str, inputs: str) -> dict | None:
        entry = self.data.get(stage)
        return entry["outputs"] if entry and entry.get("inputs") == inputs else None

    def record(self, stage: str, inputs: str, outputs: dict, seconds: float) -> None:
        self.data[stage] = {"inputs": inputs, "outputs": outputs, "seconds": round(seconds, 2),
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json(self.path, self.data)

    def forget(self, stage: str) -> None:
        self.data.pop(stage, None)


def ledger_has(run_dir: Path, stage: str) -> bool:
    """The stage is in the run's ledger (a run directory without one has no stage)."""
    return (Path(run_dir) / STAGES).exists() and stage in Ledger(run_dir).data


# -- JSON and JSON Lines ----------------------------------------------------------------------
def dumps(obj: Any) -> str:
    """The harness's JSON files: sorted keys, one space of indent, a final newline."""
    return json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n"


def write_json(path: Path, obj: Any) -> None:
    """Replace a JSON file whole (atomically: a crash leaves the old file or the new one)."""
    atomic_write_text(Path(path), dumps(obj))


def read_json(path: Path, *, default: Any = None) -> Any:
    """A JSON file's value; `default` when it does not exist; refused when it does not parse."""
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{path} is not valid JSON ({type(exc).__name__}: {exc})",
                           fix="restore it from a copy, or redo the stage that wrote it (`harness run RECIPE --force STAGE`)"
                           ) from None


def jsonl_line(row: dict) -> str:
    return json.dumps(row, sort_keys=True) + "\n"


def write_jsonl(path: Path, rows) -> None:
    """Replace a JSONL file whole (atomically)."""
    atomic_write_text(Path(path), "".join(jsonl_line(r) for r in rows))


def parse_jsonl(path: Path, *, warn: bool = True) -> tuple[list[dict], str | None]:
    """(rows, the torn last line or None). A bad line anywhere but at the end is damage: refused."""
    path = Path(path)
    if not path.exists():
        return [], None
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    rows, torn = [], None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif number == len(lines):  # no newline after it: the write was cut short
            torn = line
            if warn:
                print(f"warning: {path}: the last line was cut short (a crash or a full disk while writing); "
                      "it is left out", file=sys.stderr)
        else:
            raise HarnessError(f"{path}:{number} is not a JSON object",
                               fix="restore the file from a copy, or redo the stage that wrote it")
    return rows, torn


def read_jsonl(path: Path, *, fields: tuple[str, ...] = ()) -> list[dict]:
    """A JSONL file's rows (the policy above); `fields` each row must have, else refused."""
    rows, _ = parse_jsonl(path)
    for number, row in enumerate(rows, 1):
        missing = [f for f in fields if f not in row]
        if missing:
            raise HarnessError(f"{path}: row {number} lacks {', '.join(missing)}",
                               fix="restore the file from a copy, or redo the stage that wrote it")
    return rows


INPUTS_STAMP = ".inputs.sha256"  # in eval.tmp/: which evaluation the finished parts belong to
EXPORT_WEIGHTS = "model.safetensors"  # transformers' name for the exported weights
