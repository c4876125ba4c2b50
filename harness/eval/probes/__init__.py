"""The probes' evaluation (Gloeckle et al. 2024, Sec. 4): induction accuracy and polynomial
exact match, per example, on the test set the data preparation wrote beside the shards.

`evaluate_probes` is what `harness run`'s evaluate stage calls when `eval.probes` names a
probe. It checks the test file against the manifest's hash, scores the exported model
(weights as exported, as evaluated), writes one row per example to
`<out>/<probe>_greedy.jsonl` and returns the summary: metrics under `induction/` and
`polynomial/` (keys with a `/` are numbers), facts without one. Formats: `induction.py`,
`polynomial.py`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness import rundir
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.threads import torch_threads


def load_test_set(prepared) -> tuple[dict, list[dict]]:
    """(the manifest's probe entry, the test rows), the file checked against its hash."""
    probe = prepared.manifest.get("probe")
    if probe is None:
        raise HarnessError(f"the prepared data in {prepared.path} has no probe test set",
                           fix="use a probe data source (data.source.kind: induction or polynomial)")
    path = prepared.path / probe["test_file"]
    if not path.is_file() or sha256_file(path) != probe["test_sha256"]:
        raise HarnessError(f"{path} is missing or differs from the manifest", fix=f"delete {prepared.path} and prepare again")
    return probe, rundir.read_jsonl(path)


def score(model, prepared, probe_name: str, *, seq_len: int, batch_size: int) -> tuple[list[dict], dict]:
    """(rows, summary) of one probe on a harness model."""
    probe, examples = load_test_set(prepared)
    if probe["kind"] != probe_name:
        raise HarnessError(f"eval.probes names {probe_name} but the data is the {probe['kind']} probe",
                           fix=f"set eval.probes to [{probe['kind']}]")
    tokenizer = prepared.load_tokenizer()
    if probe_name == "induction":
        from harness.eval.probes import induction

        rows = induction.score_stories(model, tokenizer, examples, prepared.eos_id, seq_len, batch_size)
        return rows, induction.summarize(rows, examples, probe)
    from harness.eval.probes import polynomial

    rows = polynomial.score_expressions(model, tokenizer, examples, prepared.eos_id, batch_size)
    return rows, polynomial.summarize(rows, probe)


def evaluate_probes(export_dir: Path, recipe, prepared, out_dir: Path) -> dict:
    """Every probe in recipe.eval.probes on the export; rows and summary as described above."""
    from harness.model.export import load_exported

    out_dir, started = Path(out_dir), time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_exported(export_dir)
    summary: dict = {}
    with torch_threads(recipe.eval.num_threads or 1):
        for name in recipe.eval.probes:
            rows, found = score(model, prepared, name, seq_len=recipe.seq_len, batch_size=recipe.eval.analysis_batch_size)
            with (out_dir / rundir.probe_name(name)).open("w") as handle:
                for row in rows:
                    handle.write(json.dumps(row, sort_keys=True) + "\n")
            summary.update(found)
    summary["probe_generator"] = f"{prepared.manifest['probe']['kind']} v{prepared.manifest['probe']['generator_version']}"
    summary["probe_test_sha256"] = prepared.manifest["probe"]["test_sha256"]
    summary["probe_seconds"] = round(time.perf_counter() - started, 2)
    return summary
