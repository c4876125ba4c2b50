"""Every recipe's hash is pinned: a new field in a training section must not move a run
directory (`harness.recipe.UNHASHED_DEFAULTS` leaves a new field out while it holds its
default), and a changed recipe is a deliberate change of this table."""

from __future__ import annotations

import pytest

from harness.recipe import TRAINING_SECTIONS, load_recipe, recipe_hash
from harness.study.design import is_study
from tests.conftest import RECIPES

# recipe (under recipes/) -> (recipe_hash, training hash: the run directory's), first 16 hex
# digits; computed on main before train.activation_checkpointing existed
PINNED = {
    "base.yaml": ("6e13cc08f5efc249", "5ea37bac44beef60"),
    "cluster/base_7b.yaml": ("f8e6020c7ac60ea3", "03f4d7e0313398cc"),
    "cluster/deepseek_7b_d1.yaml": ("818a59bc2985dd35", "979119b7d83b16a1"),
    "cluster/meta_7b_n1.yaml": ("9a8e32521616911b", "9711d47eb2a654cc"),
    "cluster/meta_7b_n4.yaml": ("7f9b959647b16333", "471c1d21ca1c9570"),
    "collapse/base.yaml": ("31d4e5d398bb4e5d", "fb983c6e31c7921a"),
    "collapse/meta_n2.yaml": ("fa2713a5dcd4349a", "35defb8c0539f026"),
    "collapse/stp.yaml": ("4ba5a6e39f613a92", "fb983c6e31c7921a"),
    "deepseek_n2.yaml": ("eced6169ab54a90e", "da69559b8bbfe7c0"),
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
