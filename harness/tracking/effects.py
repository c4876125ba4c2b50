"""The run's tracking state machine: each effect on a tracking store (create, log, upload,
replace, finish) is written to `track/state.json` before it happens and is safe to do again,
so a crash at any instant (kill -9 included) is made good by the next `harness run` or
`harness sync`, with one MLflow run per run directory and store.

    create   The record's id is a tag of the run from the call that creates it, so a run whose
             id a crash kept from being saved is found by that tag and adopted, not made twice.
    log      Metrics are compared with what the MLflow run holds: a (metric, step) it has is
             never sent again; one that only MLflow still holds (the record's last line was
             torn) is put back into the record, never dropped from MLflow.
    upload   Per store and per file: each file's sha256 is saved once it is uploaded, so an
             interrupted upload sends the files still missing (or changed since), and only those.
    replace  The new run is tagged with the run it replaces; a replacement cut short is found
             and finished, and the old run is superseded only once the new one holds the record.
    finish   The wanted status is saved first, then set; setting it twice is harmless.

`pending` in state.json names the effect under way on each store (empty when none), so a
reader can tell what a crash interrupted. Every MLflow call goes through the gateway.
"""

from __future__ import annotations

import sys

from harness.hashing import sha256_file
from harness.tracking.gateway import (
    RECORD_TAG,
    REPLACES_TAG,
    SUPERSEDED_TAG,
    compare,
    create_run,
    find_run,
    remote_history,
    supersede,
    tagged_runs,
    terminate,
    update_params_and_tags,
    upload_file,
    upload_metrics,
)
from harness.tracking.record import TrackRecord


def identity_tags(record: TrackRecord, tags: dict) -> dict:
    """The run's tags with the record's id, which every MLflow run of this directory carries."""
    return {**tags, RECORD_TAG: record.record_id()}


def open_run(client, record: TrackRecord, uri: str, experiment: str, run_name: str | None,
             params: dict, tags: dict) -> str:
    """The store's MLflow run of this record: the saved one (or what superseded it), else one
    found by the record's tag, else a new one; a replacement a crash cut short is finished."""
    tags = identity_tags(record, tags)
    run_id = find_run(client, record.run_of(uri)) or _adopt(client, experiment, tags[RECORD_TAG])
    if run_id is None:
        record.intend(uri, {"effect": "create"})
        run_id = create_run(client, experiment, run_name, params, tags)
        record.set_run(uri, run_id)
        record.intend(uri, None)
        return run_id
    record.set_run(uri, run_id)
    update_params_and_tags(client, run_id, params, tags)
    pending = record.pending(uri) or {}
    if pending.get("effect") == "replace":
        return replace(client, record, uri, pending["old"], experiment, run_name, params, tags)
    return run_id


def _adopt(client, experiment: str, record_id: str) -> str | None:
    """The oldest live run carrying the record's id; any later ones (never made by this
    version, which saves or adopts before it creates) are superseded by it."""
    live = [run for run in tagged_runs(client, experiment, record_id) if SUPERSEDED_TAG not in run.data.tags]
    if not live:
        return None
    for extra in live[1:]:
        supersede(client, extra.info.run_id, live[0].info.run_id)
    return live[0].info.run_id


def replace(client, record: TrackRecord, uri: str, old: str, experiment: str, run_name: str | None,
            params: dict, tags: dict, depth: int = 0) -> str:
    """A new run with the whole record; `old` superseded (never reopened) once it holds it."""
    record.intend(uri, {"effect": "replace", "old": old})
    new = record.run_of(uri)
    if new in (None, old):
        tags = {**identity_tags(record, tags), REPLACES_TAG: old}
        begun = [run.info.run_id for run in tagged_runs(client, experiment, tags[RECORD_TAG])
                 if run.data.tags.get(REPLACES_TAG) == old and SUPERSEDED_TAG not in run.data.tags]
        new = begun[0] if begun else create_run(client, experiment, run_name, params, tags)
        record.set_run(uri, new)
        if begun:  # made by a process that died at once: its params may not have followed
            update_params_and_tags(client, new, params, tags)
    conflicts = reconcile(client, record, uri, new)
    supersede(client, old, new)
    if conflicts and depth < 3:  # a replacement begun from an older record: replace it too
        return replace(client, record, uri, new, experiment, run_name, params, tags, depth + 1)
    record.intend(uri, None)
    return new


def reconcile(client, record: TrackRecord, uri: str, run_id: str, upto: int | None = None) -> int:
    """Upload the (metric, step) keys the MLflow run lacks (of steps up to `upto`); returns
    how many keys disagree (0: exact now). Values MLflow holds that the record lost without
    setting them aside (a torn last line) are first put back into the record from MLflow."""
    local = record.keyed()
    remote = remote_history(client, run_id, {name for name, _ in local})
    kept = record.set_aside_keys()
    lost = {key: held[0] for key, held in remote.items()
            if key not in local and key not in kept and len(held) == 1 and (upto is None or key[1] <= upto)}
    if lost:
        record.restore(lost)
        print(f"note: {len(lost)} value(s) that {record.dir} had lost (a line cut short) were restored from "
              f"MLflow run {run_id}, the one copy left", file=sys.stderr)
        local = record.keyed()
    result = compare(local, {key: [value for value, _ in held] for key, held in remote.items()}, upto)
    log(client, record, uri, run_id, result.missing)
    return result.conflicts


def log(client, record: TrackRecord, uri: str, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    if not rows:
        return
    record.intend(uri, {"effect": "log", "steps": [min(r[3] for r in rows), max(r[3] for r in rows)]})
    upload_metrics(client, run_id, rows)
    record.intend(uri, None)


def upload(client, record: TrackRecord, uri: str, run_id: str, *, force: bool = False) -> list[str]:
    """Upload each recorded artifact file this store's run lacks (or holds an older copy of);
    returns the recorded paths that are gone."""
    done = {} if force else record.uploaded(uri, run_id)
    missing = []
    for path, artifact_dir, dest in record.artifact_files():
        if dest is None:
            missing.append(str(path))
            continue
        sha = sha256_file(path)
        if done.get(dest) == sha:
            continue
        record.intend(uri, {"effect": "upload", "file": dest})
        upload_file(client, run_id, path, artifact_dir)
        record.mark_uploaded(uri, run_id, dest, sha)
    record.intend(uri, None)
    return missing


def close(client, record: TrackRecord, uri: str, run_id: str, status: str, step: int) -> None:
    record.intend(uri, {"effect": "finish", "status": status})
    terminate(client, run_id, status, step)
    record.intend(uri, None)
