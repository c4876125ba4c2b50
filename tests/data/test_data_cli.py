"""`harness data prepare` and `harness data inspect`: the summary, decoded rows, and one
`error:` line with exit status 2 for each kind of bad input."""

from __future__ import annotations

import re

import pytest

from tests.data.data_helpers import write_corpus

RECIPE = """\
recipe_version: 1
name: tinydata
model: {stp_layers: 2, d_model: 16, n_heads: 2, n_kv_heads: 1, ffn_hidden: 32, vocab_size: 300, seq_len: 16}
objective: {kind: meta, n: 2}
train: {steps: 3, global_batch_size: 4, micro_batch_size: 1}
data: {source: {kind: local, path: corpus}, val_fraction: 0.2}
"""


@pytest.fixture
def recipe(tmp_path, write, monkeypatch):
    monkeypatch.setenv("MTP_HARNESS_CACHE", str(tmp_path / "cache"))
    write_corpus(tmp_path / "corpus")
    return write("tiny.yaml", RECIPE)


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:] and "Traceback" not in result.output, lines  # progress lines may precede it
    return lines[-1]


def test_prepare_prints_the_summary_and_decontamination(cli, recipe):
    result = cli("data", "prepare", recipe)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "manifest sha256" in out and "0 of 30 documents dropped" in out and "13-grams vs humaneval, mbpp" in out
    assert "rows of 18 tokens" in out and "train windows per epoch" in out
    again = cli("data", "prepare", recipe)  # a cache hit prints the same thing
    assert again.exit_code == 0 and again.stdout == out


def test_prepare_relative_to_finds_what_the_run_of_a_job_copy_will_find(cli, recipe, tmp_path):
    """A Slurm job prepares its copy of the recipe (in the job directory) before the ranks
    start; --relative-to points its relative corpus path at the original's folder, and the
    run that follows (`harness run --relative-to`, same base) hits the same cache entry."""
    job = tmp_path / "jobs" / "one"
    job.mkdir(parents=True)
    (job / "recipe.yaml").write_text(recipe.read_text())
    original = cli("data", "prepare", recipe)
    copied = cli("data", "prepare", job / "recipe.yaml", "--relative-to", tmp_path)
    assert original.exit_code == 0 and copied.exit_code == 0, copied.output + copied.stderr
    assert copied.stdout == original.stdout  # the same manifest, from the cache
    alone = cli("data", "prepare", job / "recipe.yaml")
    assert alone.exit_code == 2  # the job directory has no corpus/ beside it


def _printed_rows(stdout: str) -> dict[int, str]:
    """Row number -> the decoded input text `inspect` printed under that row's rule."""
    rows, current = {}, None
    for line in stdout.splitlines():
        if match := re.search(r"row (\d+): window \d+ \(tokens \d+\.\.\)", line):
            current = int(match.group(1))
            rows[current] = []
        elif line.startswith("[+") and "target tokens" in line:
            current = None
        elif current is not None:
            rows[current].append(line.rstrip())
    return {row: "\n".join(lines) for row, lines in rows.items()}


def test_inspect_prints_rows_cut_from_the_corpus_whatever_the_ranks(cli, recipe, tmp_path):
    """Oracles independent of the loader: every printed row is a piece of a corpus file (split
    at the end-of-text marker between documents), and rank 1 of 2 prints exactly rows 2..3 of
    what one process prints for the same step (batches do not depend on the process count)."""
    one = cli("data", "inspect", recipe, "--step", "2")
    two = cli("data", "inspect", recipe, "--step", "2", "--rank", "1", "--world-size", "2")
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    assert "step 2, rank 1 of 2: rows 2..3 of the global batch of 4" in two.stdout
    everything, ours = _printed_rows(one.stdout), _printed_rows(two.stdout)
    assert sorted(everything) == [0, 1, 2, 3] and sorted(ours) == [2, 3]
    assert all(ours[i] == everything[i] for i in (2, 3))
    corpus = ["\n".join(line.rstrip() for line in f.read_text().splitlines()) for f in (tmp_path / "corpus").iterdir()]
    for text in everything.values():
        pieces = [p for p in text.split("<|endoftext|>") if p.strip()]
        assert pieces and all(any(p in doc for doc in corpus) for p in pieces), text
    assert two.stdout.count("+2 target tokens") == 2  # Meta n=2: one extra target per row


@pytest.mark.parametrize(
    "overrides, setup, message",
    [
        (["data.source.path=empty"], "empty", "the corpus is empty"),
        (["data.source.path=missing"], None, "'missing' matched no files"),
        (["data.strict_utf8=true"], "latin1", "bad.py is not UTF-8"),
        (["model.vocab_size=4294967297"], None, "does not fit the uint32 token shards"),
        (["data.seq_len=32"], None, "data.seq_len 32 is above model.seq_len 16"),
        (["train.global_batch_size=100000", "train.micro_batch_size=1"], None, "fewer than one global batch"),
    ],
)
def test_bad_input_is_one_error_line(cli, recipe, tmp_path, overrides, setup, message):
    if setup == "empty":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "blank.py").write_text("\n")
    if setup == "latin1":
        (tmp_path / "corpus" / "bad.py").write_bytes(b"# caf\xe9\n")
    line = _error_line(cli("data", "prepare", recipe, *overrides))
    assert message in line
