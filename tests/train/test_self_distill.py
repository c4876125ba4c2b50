"""Self-distillation data (`data.self_distill`, `train/self_distill.py`, `data/distilled.py`).

A tiny random checkpoint continues the corpus: each distilled row is the corpus window's
prompt followed by exactly the checkpoint's plain greedy decoding (checked against an
uncached full-forward loop); the training loader serves distilled rows for the same windows
in the same order, validation stays on the corpus; the folder is cached and reused, and a
changed checkpoint or prompt length makes another; the option needs `model.init_from`. End
to end (slow): a DeepSeek module trained post hoc on distilled data agrees with the model's
own greedy choice more often than at initialisation.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from harness.data.loader import recipe_windows
from harness.errors import HarnessError
from harness.recipe import load_recipe
from tests.model.test_model_continuation import uncached_greedy
from tests.train.test_train_from_pretrained import DATA as FT_DATA
from tests.train.test_train_from_pretrained import from_checkpoint, run, start, val_rows  # noqa: F401 (start: a fixture)

S, P = 32, 6


def distill_recipe(root: Path, init: Path, prompt_tokens: int = P, **extra) -> Path:
    path = root / f"distill-{prompt_tokens}.yaml"
    path.write_text(textwrap.dedent(f"""\
        recipe_version: 1
        name: distill
        model: {{init_from: '{init}'}}
        objective: {{kind: deepseek, depth: 1}}
        data: {{source: {{kind: stdlib, max_files: 30}}, decontaminate: {{enabled: false}},
                self_distill: {{prompt_tokens: {prompt_tokens}, batch_size: 5}}}}
        train: {{steps: 4, global_batch_size: 4, micro_batch_size: 4, num_threads: 1, freeze: trunk_and_unembedding}}
        """))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random STP checkpoint with a BPE tokenizer trained on the same corpus."""
    from harness.data.config import DataConfig
    from harness.data.prepare import prepare_data
    from harness.model.config import TrunkConfig
    from harness.model.export import export_hf
    from harness.model.mtp_model import build_model
    from harness.model.objectives.registry import objective_class

    root = tmp_path_factory.mktemp("distill")
    bpe = prepare_data(DataConfig.model_validate(json.loads(json.dumps({"source": {"kind": "stdlib", "max_files": 30},
                                                                        "decontaminate": {"enabled": False}}))),
                       vocab_size=320, seq_len=S, base_dir=root)
    torch.manual_seed(0)
    trunk = TrunkConfig(stp_layers=2, d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64, vocab_size=320, seq_len=S)
    model = build_model(trunk, objective_class("stp")())
    with torch.no_grad():  # sharper logits than the init: continuations that differ by row
        for p in model.parameters():
            p.mul_(3.0)
    return root, export_hf(model, root / "ckpt", bpe.tokenizer_dir)


def prepared(recipe, root: Path):
    from harness.data.prepare import prepare_data

    return prepare_data(recipe.data, vocab_size=recipe.model.vocab_size, seq_len=recipe.seq_len, base_dir=root)


def test_distilled_rows_are_the_corpus_prompt_then_the_checkpoints_greedy_decoding(checkpoint, one_thread):
    from harness.model.mtp_model import build_model
    from harness.model.pretrained import load_pretrained
    from harness.train.loop import _batches
    from harness.train.self_distill import consumed_windows, self_distill

    root, init = checkpoint
    recipe = load_recipe(distill_recipe(root, init))
    data = prepared(recipe, root)
    made = self_distill(recipe, data, init, "weights-a", "cpu", log=lambda _: None)
    corpus = recipe_windows(recipe, data, "train")
    windows = consumed_windows(recipe, corpus)
    assert made["windows"] == len(windows) == 16 and made["generated_tokens"] == 16 * (S + 2 - P)
    assert Path(made["path"]).parent == data.path.parent.parent / "distilled"  # beside the prepared data

    loader, val = _batches(recipe, data, Path(made["path"]))
    corpus_loader, corpus_val = _batches(recipe, data)
    assert all(torch.equal(a, b) for a, b in zip(val, corpus_val))  # validation stays on the corpus
    model = build_model(recipe.model, recipe.objective)
    load_pretrained(model, init)
    model.eval()
    for step in range(recipe.steps):  # the loader's (seed, step) -> windows mapping, distilled rows
        rows, real = loader.batch(step, 4, recipe.train.seed), corpus_loader.batch(step, 4, recipe.train.seed)
        assert rows.shape == real.shape == (4, S + 2)
        assert torch.equal(rows[:, :P], real[:, :P])
        assert torch.equal(rows, uncached_greedy(model, real[:, :P], S + 2))
        assert not torch.equal(rows[:, P:], real[:, P:])


def test_the_cache_is_reused_and_a_new_checkpoint_or_prompt_length_makes_another(checkpoint, monkeypatch):
    from harness.train import self_distill as module

    root, init = checkpoint
    calls = []
    generate = module.generate
    monkeypatch.setattr(module, "generate", lambda *a, **k: (calls.append(1), generate(*a, **k))[1])
    recipe = load_recipe(distill_recipe(root, init, prompt_tokens=9))
    data = prepared(recipe, root)
    first = module.self_distill(recipe, data, init, "weights-a", "cpu", log=lambda _: None)
    tokens = Path(first["path"]) / "tokens.bin"
    stamp = tokens.stat().st_mtime_ns
    again = module.self_distill(recipe, data, init, "weights-a", "cpu", log=lambda _: None)
    assert len(calls) == 1 and not first["reused"] and again["reused"] and again["key"] == first["key"]
    assert tokens.stat().st_mtime_ns == stamp

    other_weights = module.self_distill(recipe, data, init, "weights-b", "cpu", log=lambda _: None)
    other_prompt = load_recipe(distill_recipe(root, init, prompt_tokens=10))
    windows = module.consumed_windows(other_prompt, recipe_windows(other_prompt, data, "train"))
    keyed = module.key_inputs(other_prompt, data, "weights-a", windows, "cpu")
    assert len(calls) == 2 and other_weights["key"] != first["key"]
    assert keyed != module.key_inputs(recipe, data, "weights-a", windows, "cpu")
    longer = load_recipe(distill_recipe(root, init, prompt_tokens=9), ["train.steps=5"])  # more windows
    assert module.key_inputs(longer, data, "weights-a", module.consumed_windows(longer, recipe_windows(
        longer, data, "train")), "cpu") != module.key_inputs(recipe, data, "weights-a", windows, "cpu")


def test_self_distillation_without_a_checkpoint_is_refused_in_one_line(checkpoint):
    root, init = checkpoint
    with pytest.raises(HarnessError) as refused:
        load_recipe(distill_recipe(root, init), ["~model.init_from", "model.stp_layers=2", "model.d_model=32",
                                                 "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_hidden=64",
                                                 "model.vocab_size=320", f"model.seq_len={S}"])
    message = str(refused.value)
    assert "data.self_distill needs model.init_from" in message and "set model.init_from" in message
    assert "\n" not in message.strip()
    with pytest.raises(HarnessError, match="prompt_tokens 32 leaves nothing to generate"):
        load_recipe(distill_recipe(root, init, prompt_tokens=S))


def test_an_unset_option_leaves_the_recipe_hash_alone(checkpoint):
    from harness.recipe import hashed_dump

    root, init = checkpoint
    recipe = load_recipe(distill_recipe(root, init), ["~data.self_distill"])
    assert "self_distill" not in hashed_dump(recipe)["data"]
    assert hashed_dump(load_recipe(distill_recipe(root, init)))["data"]["self_distill"]["prompt_tokens"] == P


@pytest.mark.slow
def test_a_module_trained_post_hoc_on_distilled_data_agrees_more_with_the_models_greedy_choice(
        start, tmp_path, write, cli, one_thread):  # noqa: F811 (the imported fixture)
    """From a briefly trained STP export (tests/train/test_train_from_pretrained.py's `start`)."""
    from harness.eval.analyses.acceptance import depth_agreement
    from harness.model.export import load_exported
    from harness.model.mtp_model import build_model
    from harness.model.pretrained import load_pretrained

    export, start_val = start
    text = from_checkpoint(export, "{kind: deepseek, depth: 1}", "trunk_and_unembedding", 50, "distill")
    recipe_path = write("distill.yaml", text.replace(FT_DATA, FT_DATA[:-1] + ", self_distill: {prompt_tokens: 8}}"))
    run_dir = run(cli, recipe_path, tmp_path / "runs")
    made = json.loads((run_dir / "data.json").read_text())["self_distill"]
    assert 0 < made["windows"] <= 50 * 4 and made["generated_tokens"] == made["windows"] * (32 + 2 - 8)
    assert Path(made["path"]).is_dir() and made["init_weights"] and not made["reused"]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())["val"]
    assert summary["val/depth_1"] == start_val["val/depth_1"]  # validated on the corpus, next-token model frozen

    recipe = load_recipe(recipe_path)
    rows = val_rows(run_dir, n_predict=2)
    torch.manual_seed(recipe.train.seed)
    initial = build_model(recipe.model, recipe.objective)
    load_pretrained(initial, export)
    before = depth_agreement(initial, rows, 32)["2"]
    after = depth_agreement(load_exported(run_dir / "export"), rows, 32)["2"]
    assert after["agree_greedy"] > before["agree_greedy"] + 0.05, (before, after)
