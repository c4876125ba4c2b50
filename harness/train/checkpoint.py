"""Checkpoints that survive crashes: written aside, checksummed, then renamed into place.

Layout under RUN_DIR/checkpoints/:
    step_000100/   DeepSpeed's files for that tag + harness_state.json + CHECKSUMS.json
    latest         the newest complete tag (replaced atomically)
    .tmp-*/        a save in progress (a crash leaves it; the next start removes it)
    *.corrupt/     a checkpoint that failed verification, kept for inspection, never used
    universal/     a checkpoint converted for another world size (harness.train.universal)

A checkpoint is complete only once its directory has been renamed into place, and it is
trusted only if every file still matches CHECKSUMS.json (size and modification time, or with
`full` the sha256, which `harness run --verify` asks for), so a crash mid-write or a
truncated file falls back to the previous checkpoint instead of destroying it.

Two different failures, never confused: a checkpoint whose files do not match their
checksums is *corrupt* (renamed `*.corrupt`, the previous one is used); an intact checkpoint
DeepSpeed cannot load here is *incompatible* (the run stops and says why; nothing renamed).
A checkpoint saved by another number of processes under ZeRO >= 1 is converted to
DeepSpeed's universal format and loaded from that. If checkpoints existed and none is
usable, the run stops rather than silently starting over (`--force train` starts over).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import atomic_write_text, fsync_dir, is_disk_full
from harness.errors import HarnessError, one_line
from harness.hashing import sha256_file
from harness.ranks import all_gather, barrier, broadcast_object, main_decides

TAG = re.compile(r"^step_(\d+)$")
CHECKSUMS_FORMAT = 2  # {"format": 2, "files": {name: {"sha256", "size", "mtime_ns"}}}


def tag_for(step: int) -> str:
    return f"step_{step:06d}"


def save(engine, ckpt_dir: Path, step: int, state: dict, *, is_main: bool, keep: int) -> Path:
    """Every rank calls this; rank 0 seals and publishes the checkpoint. A failed save (a full
    disk, a signal) leaves no staging folder and the previous checkpoint as the newest."""
    tag = tag_for(step)
    staging = ckpt_dir / f".tmp-{tag}"
    if is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    barrier()
    try:
        engine.save_checkpoint(str(staging), tag=tag, client_state={"harness": state}, save_latest=False)
        barrier()
        if is_main:
            _publish(staging / tag, ckpt_dir, tag, state, keep)
    except BaseException as exc:
        if is_main:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(ckpt_dir / f".old-{tag}", ignore_errors=True)
        if is_disk_full(exc):
            newest = _complete_tags(ckpt_dir)
            kept = f"the newest complete checkpoint, {newest[0][1]}, is kept" if newest else "no checkpoint was complete yet"
            raise HarnessError(f"no space left on {ckpt_dir} while saving checkpoint {tag}; {kept}",
                               fix="free space there (or lower train.keep_checkpoints) and run the same command again") from None
        raise
    barrier()
    return ckpt_dir / tag


def _publish(sealed: Path, ckpt_dir: Path, tag: str, state: dict, keep: int) -> None:
    atomic_write_text(sealed / "harness_state.json", json.dumps(state, indent=1, sort_keys=True))
    files = {}
    for path in sorted(p for p in sealed.rglob("*") if p.is_file()):
        stat = path.stat()
        files[str(path.relative_to(sealed))] = {"sha256": sha256_file(path), "size": stat.st_size,
                                                 "mtime_ns": stat.st_mtime_ns}
    atomic_write_text(sealed / "CHECKSUMS.json", json.dumps({"format": CHECKSUMS_FORMAT, "files": files},
                                                            indent=1, sort_keys=True))
    final = ckpt_dir / tag
    if final.exists():  # a re-save of the same step: keep the old copy until the new is in place
        final.rename(ckpt_dir / f".old-{tag}")
    sealed.rename(final)
    fsync_dir(ckpt_dir)
    atomic_write_text(ckpt_dir / "latest", tag)
    shutil.rmtree(sealed.parent, ignore_errors=True)
    shutil.rmtree(ckpt_dir / f".old-{tag}", ignore_errors=True)
    _prune(ckpt_dir, keep)


def _complete_tags(ckpt_dir: Path) -> list[tuple[int, str]]:
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in ckpt_dir.iterdir() if p.is_dir() and (m := TAG.match(p.name))]
    return sorted(found, reverse=True)


def _prune(ckpt_dir: Path, keep: int) -> None:
    for _, tag in _complete_tags(ckpt_dir)[keep:]:
        shutil.rmtree(ckpt_dir / tag, ignore_errors=True)


def verify(path: Path, *, full: bool = False) -> str | None:
    """None if the checkpoint is intact, else what is wrong with it. Files whose size and
    modification time are as recorded are trusted; `full` re-hashes every one."""
    sums_path = path / "CHECKSUMS.json"
    if not sums_path.is_file():
        return "CHECKSUMS.json is missing"
    try:
        sums = json.loads(sums_path.read_text())
    except json.JSONDecodeError:
        return "CHECKSUMS.json is unreadable"
    if sums.get("format") != CHECKSUMS_FORMAT:  # older checkpoints: name -> sha256
        sums = {"files": {name: {"sha256": digest} for name, digest in sums.items() if isinstance(digest, str)}}
    for name, expected in sums["files"].items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        stat = file.stat()
        if "size" in expected and stat.st_size != expected["size"]:
            return f"{name} has {stat.st_size} bytes, not {expected['size']} (truncated or modified)"
        if not full and stat.st_mtime_ns == expected.get("mtime_ns"):
            continue
        if sha256_file(file) != expected["sha256"]:
            return f"{name} does not match its checksum (truncated or modified)"
    return None


def saved_world_size(path: Path) -> int:
    """The number of data-parallel processes that saved it: recorded by the harness, or
    counted from ZeRO's per-rank optimizer files (checkpoints from older versions)."""
    state_file = path / "harness_state.json"
    if state_file.is_file():
        recorded = json.loads(state_file.read_text()).get("world_size")
        if recorded:
            return int(recorded)
    return len(list(path.glob("*zero_pp_rank_*_mp_rank_00_optim_states.pt"))) or 1  # bf16_ prefix too


@dataclass(frozen=True)
class Resume:
    """The checkpoint a run continues from."""

    tag: str
    state: dict  # harness_state.json
    saved_world_size: int
    universal: bool  # saved by another number of processes under ZeRO >= 1: convert first

    @property
    def step(self) -> int:
        return int(self.state["step"])


def choose(ckpt_dir: Path, world_size: int, zero_stage: int, *, is_main: bool, full: bool = False,
           log=print) -> Resume | None:
    """The newest intact checkpoint (rank 0 decides, every rank gets the answer); corrupt
    ones are renamed `*.corrupt` on the way. None when there never was one."""
    return main_decides(lambda: _choose(ckpt_dir, world_size, zero_stage, full, log), is_main=is_main)


def _choose(ckpt_dir: Path, world_size: int, zero_stage: int, full: bool, log) -> Resume | None:
    _recover_old_copies(ckpt_dir)
    for _, tag in _complete_tags(ckpt_dir):
        path = ckpt_dir / tag
        problem = verify(path, full=full)
        if problem is None:
            try:
                state = json.loads((path / "harness_state.json").read_text())
            except (OSError, json.JSONDecodeError):
                problem = "harness_state.json is missing or unreadable"
            else:
                saved = saved_world_size(path)
                return Resume(tag, state, saved, universal=zero_stage > 0 and saved != world_size)
        set_aside_corrupt(path, problem, log)
    corrupt = sorted(p.name for p in ckpt_dir.glob("step_*.corrupt")) if ckpt_dir.is_dir() else []
    if corrupt:
        raise HarnessError(
            f"no usable checkpoint in {ckpt_dir}: {', '.join(corrupt)} failed verification (kept for inspection)",
            fix="run the same command with `--force train` to start training over (the corrupt checkpoints are kept)",
        )
    return None


def _recover_old_copies(ckpt_dir: Path) -> None:
    """What a killed save leaves: its staging folder (removed; the run lock says no save is
    in progress) and, during a re-save of one step, the previous copy as `.old-<tag>` only."""
    if not ckpt_dir.is_dir():
        return
    for staging in ckpt_dir.glob(".tmp-*"):
        shutil.rmtree(staging, ignore_errors=True)
    for old in ckpt_dir.glob(".old-step_*"):
        tag = old.name.removeprefix(".old-")
        if not (ckpt_dir / tag).exists():
            old.rename(ckpt_dir / tag)


def set_aside_corrupt(path: Path, problem: str, log=print) -> None:
    log(f"warning: checkpoint {path} is corrupt: {problem}; kept as {path.name}.corrupt, "
        "falling back to the previous checkpoint")
    target = path.with_name(path.name + ".corrupt")
    shutil.rmtree(target, ignore_errors=True)  # the same step went bad twice: keep the newer
    path.rename(target)


class Corrupt(Exception):
    """A checkpoint DeepSpeed could not read turned out not to match its checksums."""


def load(engine, load_dir: Path, ckpt_dir: Path, resume: Resume, *, is_main: bool, log=print) -> dict:
    """Load `resume` into the engine (from `load_dir`: the checkpoints, or their universal
    conversion); returns the harness state. A load error on a checkpoint whose files match
    their sha256 is an incompatibility (HarnessError); otherwise it is corruption (`Corrupt`,
    the checkpoint renamed), and the caller chooses again."""
    failure = None
    try:
        _, client = engine.load_checkpoint(str(load_dir), tag=resume.tag)
        if client is None or "harness" not in client:
            failure = "it holds no harness state"
    except Exception as exc:  # DeepSpeed and torch raise many kinds; each is classified below
        failure = f"{type(exc).__name__}: {one_line(exc)[:300]}"
    failure = next((f for f in all_gather(failure) if f), None)  # any rank's failure is everyone's
    if failure is None:
        return client["harness"]
    verdict = failure
    if is_main:
        path = ckpt_dir / resume.tag
        problem = verify(path, full=True)
        if problem is not None:
            set_aside_corrupt(path, f"{problem} ({failure})", log)
            verdict = "corrupt"
    verdict = broadcast_object(verdict)
    if verdict == "corrupt":
        raise Corrupt(resume.tag)
    raise HarnessError(
        f"checkpoint {ckpt_dir / resume.tag} is intact (its files match their sha256) but cannot be "
        f"loaded here: {verdict}; it was saved by {resume.saved_world_size} process(es) and is kept as it is",
        fix=f"resume with the settings it was saved with ({resume.saved_world_size} process(es)), "
            "or start over with `--force train`",
    )


def check_identity(state: dict, expected: dict) -> None:
    """Refuse to resume a checkpoint made from another recipe or another corpus."""
    for key, want in expected.items():
        have = state.get(key)
        if have != want:
            raise HarnessError(
                f"the checkpoint was made with {key} {str(have)[:16]}..., this run has {str(want)[:16]}...",
                fix="resume with the same recipe and data, or start a new run directory",
            )
