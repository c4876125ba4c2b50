"""The laptop default end to end: the whole standard library, a 4096-token BPE, S=256."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.documents import ReadStats
from harness.data.loader import TokenWindows
from harness.data.prepare import prepare_data
from harness.data.sources import open_source
from harness.recipe import load_recipe
from tests.conftest import RECIPES


@pytest.mark.slow
def test_laptop_recipe_data_prepares_and_round_trips(tmp_path):
    recipe = load_recipe(RECIPES / "base.yaml")
    prepared = prepare_data(recipe.data, vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len,
                            base_dir=RECIPES, cache_root=tmp_path)
    m = prepared.manifest
    assert m["source"]["kind"] == "stdlib" and m["source"]["documents"] > 500
    assert m["decontamination"]["documents_checked"] > 500 and m["dtype"] == "uint16"
    windows = TokenWindows(prepared, "train", seq_len=recipe.seq_len,
                           row_length=recipe.objective.row_length(recipe.seq_len),
                           lookahead_reserve=recipe.data.lookahead_reserve)
    assert windows.n_windows >= recipe.steps * recipe.train.global_batch_size  # no window repeats in a run
    # Every kept document comes back exactly from the shards.
    tokenizer = prepared.load_tokenizer()
    decoded = set()
    for split in ("train", "val"):
        for path, _ in prepared.shards(split):
            ids = np.fromfile(path, dtype=prepared.dtype)
            for doc in np.split(ids, np.flatnonzero(ids == prepared.eos_id) + 1)[:-1]:
                decoded.add(tokenizer.decode(doc[:-1].tolist()))
    dropped = {d["document"] for d in prepared.decontamination["dropped"]}
    source = open_source(recipe.data, RECIPES)
    texts = {d.text for d in source.documents(ReadStats()) if d.text.strip() and d.id not in dropped}
    assert decoded == texts
