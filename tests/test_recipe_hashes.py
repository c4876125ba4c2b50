"""Every recipe's hash is pinned: a new field in a training section must not move a run
directory (`harness.recipe.UNHASHED_DEFAULTS` leaves a new field out while it holds its
default), and a changed recipe is a deliberate change of this table."""

from __future__ import annotations

import pytest

from harness.recipe import TRAINING_SECTIONS, load_recipe, recipe_hash
from harness.study.design import is_study
from tests.conftest import RECIPES

# recipe (under recipes/) -> (recipe_hash, training hash: the run directory's), first 16 hex
# digits; computed on main before train.activation_checkpointing existed, then the 7B recipes'
# deliberate change and the recipes/gpu/ arms added
PINNED = {
    "base.yaml": ("6e13cc08f5efc249", "5ea37bac44beef60"),
    "cluster/base_7b.yaml": ("1880cdacb57a73d3", "d19f9972f7373e41"),  # train.zero_stage 1 -> 2: the plan's fix to fit 80 GB
    "cluster/deepseek_7b_d1.yaml": ("bb91a4b7b8fa7dd8", "e6623d4521b5f028"),  # train.zero_stage 1 -> 2: the plan's fix to fit 80 GB
    "cluster/meta_7b_n1.yaml": ("ca0558e8c4f69cf8", "567a221edc591325"),  # train.zero_stage 1 -> 2: the plan's fix to fit 80 GB
    "cluster/meta_7b_n4.yaml": ("e4c6acc763b5e9c5", "356720e1dd5e272d"),  # train.zero_stage 1 -> 2: the plan's fix to fit 80 GB
    "collapse/base.yaml": ("31d4e5d398bb4e5d", "fb983c6e31c7921a"),
    "collapse/meta_n2.yaml": ("fa2713a5dcd4349a", "35defb8c0539f026"),
    "collapse/stp.yaml": ("4ba5a6e39f613a92", "fb983c6e31c7921a"),
    "deepseek_n2.yaml": ("eced6169ab54a90e", "da69559b8bbfe7c0"),
    "gpu/base.yaml": ("22319018d09c1594", "2bfe790af1e83e75"),
    "gpu/base_125m.yaml": ("a866aaf290e893e0", "2bfe790af1e83e75"),
    "gpu/base_1b.yaml": ("4d9d192596b03a3d", "9699f03846c9fd04"),
    "gpu/base_350m.yaml": ("43b0f9dd183bd3c3", "2ed3e79d2b45d058"),
    "gpu/deepseek_125m_d1.yaml": ("15e5b0b837c3bcad", "b6d69d616815fb46"),
    "gpu/deepseek_1b_d1.yaml": ("e8db96259dd25672", "576ac43f442be7b9"),
    "gpu/deepseek_350m_d1.yaml": ("b3d2142daee6f604", "792b0f9cf58b7c20"),
    "gpu/meta_125m_n4.yaml": ("df278e5b913c847c", "558f147217c7a44f"),
    "gpu/meta_1b_n4.yaml": ("092d4c620227ba3a", "ac39afab645ca073"),
    "gpu/meta_350m_n4.yaml": ("3635bdd863faba5a", "01c03f102a202447"),
    "gpu/stp_125m.yaml": ("51b7e853859db8e8", "2bfe790af1e83e75"),
    "gpu/stp_1b.yaml": ("81d58820db5cfc41", "9699f03846c9fd04"),
    "gpu/stp_350m.yaml": ("57a614e4b34d2286", "2ed3e79d2b45d058"),
    "laptop/base.yaml": ("f110e05d5cee94cb", "8267a6e9ab1c0648"),
    "laptop/deepseek_n2.yaml": ("02e8689fa3337e8c", "80e7fe00b6987a9d"),
    "laptop/meta_n2.yaml": ("8f64ac64ac8b5c3e", "e30dab642a1691e4"),
    "laptop/meta_n4.yaml": ("fccbb3de11103882", "3b2ff6d23266a041"),
    "laptop/stp.yaml": ("304eef4ab0ca08f2", "8267a6e9ab1c0648"),
    "laptop/top.yaml": ("61c3e19a35f02273", "c7a5f187ced2e0e1"),
    "meta_n2.yaml": ("b95f65a920358989", "ac0d3d03d2bfddfc"),
    "probes/induction/base.yaml": ("1e07c40c50fc3d8f", "f5325f894f0464f6"),
    "probes/induction/small.yaml": ("d5aacad2bed05689", "1eb9b5bb149581dd"),
    "probes/induction/small_deepseek_d1.yaml": ("5981cf9632e789ba", "a0602133d9e12a0e"),
    "probes/induction/small_meta_n2.yaml": ("ac46cb59d584d8a3", "c877b7963bf099b7"),
    "probes/induction/small_meta_n4.yaml": ("3719d5ab0329ae85", "f6d12729f52cf4e9"),
    "probes/induction/small_stp.yaml": ("0ee558365d424cf4", "1eb9b5bb149581dd"),
    "probes/induction/tiny.yaml": ("6c83812290d2f11f", "7d4fd302a36f2ec6"),
    "probes/induction/tiny_deepseek_d1.yaml": ("b771cca88650b8d5", "a9404af07aedc4cc"),
    "probes/induction/tiny_meta_n2.yaml": ("d932583a345b72bc", "6ee59e6acb267dbb"),
    "probes/induction/tiny_meta_n4.yaml": ("0e40e40d6991687f", "3412f468f04b2722"),
    "probes/induction/tiny_stp.yaml": ("426137e780190c9a", "7d4fd302a36f2ec6"),
    "probes/polynomial/base.yaml": ("6df9ad18939ef61f", "31e753ff5990a797"),
    "probes/polynomial/deepseek_d1.yaml": ("cae62631edb936c0", "4669ac28073970a3"),
    "probes/polynomial/meta_n2.yaml": ("bfa76002c993b6a3", "338ad8b70bfd7c88"),
    "probes/polynomial/meta_n4.yaml": ("d940a8f453c072d3", "f1f249f994c1cd5a"),
    "probes/polynomial/stp.yaml": ("f6dda142801ac714", "31e753ff5990a797"),
    "stp.yaml": ("4d6876784816badc", "5ea37bac44beef60"),
    "top.yaml": ("5be1c03f788567e7", "72ca97b91a1f41a3"),
}


def _hashes(path):
    recipe = load_recipe(path)
    return recipe_hash(recipe)[:16], recipe_hash(recipe, TRAINING_SECTIONS)[:16]


def test_every_recipe_keeps_its_pinned_hash():
    found = {p.relative_to(RECIPES).as_posix(): p for p in sorted(RECIPES.rglob("*.yaml")) if not is_study(p)}
    assert sorted(found) == sorted(PINNED), "a recipe was added or removed: pin its hashes here"
    moved = {name: (_hashes(path), PINNED[name]) for name, path in found.items() if _hashes(path) != PINNED[name]}
    assert moved == {}


@pytest.mark.parametrize("overrides", [["train.activation_checkpointing=true"]])
def test_a_field_set_away_from_its_default_is_hashed(overrides):
    base = load_recipe(RECIPES / "stp.yaml")
    changed = load_recipe(RECIPES / "stp.yaml", overrides)
    assert recipe_hash(changed) != recipe_hash(base)
    assert recipe_hash(changed, TRAINING_SECTIONS) != recipe_hash(base, TRAINING_SECTIONS)
    explicit_default = load_recipe(RECIPES / "stp.yaml", ["train.activation_checkpointing=false"])
    assert recipe_hash(explicit_default) == recipe_hash(base)
