"""A probe generator as a corpus source: training documents, a fixed vocabulary, a test set.

`ProbeCorpus` adapts a generator (`InductionGenerator`, `PolynomialGenerator`) to the
`CorpusSource` protocol of `harness.data.sources`, so preparation (split, tokenizer,
shards, manifest, cache) is the same code as for any corpus. Two things are its own: the
generator's fixed `vocabulary()`, from which the `vocabulary` tokenizer is built, and
`write_eval_sets`, which writes the test examples beside the shards (`probe/test.jsonl`)
and returns the manifest's `probe` entry: generator, version, settings, file hash, counts.
The test set is never part of the token shards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from harness.data.documents import Document, ReadStats
from harness.hashing import sha256_file

TEST_FILE = "probe/test.jsonl"


class ProbeCorpus:
    def __init__(self, generator):
        self.generator = generator

    def identity(self, digest=None) -> dict:  # generated: nothing to hash but the settings
        return {"kind": self.generator.name, "generator_version": self.generator.version,
                "settings": self.generator.cfg.model_dump(mode="json")}

    def documents(self, stats: ReadStats) -> Iterator[Document]:
        for index, text in enumerate(self.generator.train_texts()):
            yield Document(f"{self.generator.name}[{index}]", text)

    def vocabulary(self) -> list[str]:
        return self.generator.vocabulary()

    def write_eval_sets(self, out_dir: Path) -> dict:
        """Write the test rows under out_dir (the preparation's root); the manifest entry."""
        path = Path(out_dir) / TEST_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.generator.test_rows()
        with path.open("w") as handle:
            for row in rows:
                handle.write(json.dumps(row, sort_keys=True) + "\n")
        return {**self.identity(), "test_file": TEST_FILE, "test_sha256": sha256_file(path), "test_rows": len(rows),
                **self.generator.facts()}


def open_probe(cfg) -> ProbeCorpus:
    if cfg.kind == "induction":
        from harness.data.synthetic.induction import InductionGenerator

        return ProbeCorpus(InductionGenerator(cfg))
    from harness.data.synthetic.polynomial import PolynomialGenerator

    return ProbeCorpus(PolynomialGenerator(cfg))
