"""Recipe hashes are run-directory names: a new recipe field must not move any of them.

A run directory is `runs/<name>-<sha256 of the training sections>[:12]/` and its stages are
cached by the full recipe hash, so a field added to the schema with a default would, if it
joined the hashed dump, rename every run directory already made and retrain every arm of a
study already run. `recipe.hashed_dump` leaves unset new fields out of what is hashed; this
test pins the hashes every shipped recipe and study arm had before `model.init_from` and
`train.freeze` existed (computed on main at 114c6df, where the laptop arms live in
recipes/laptop/ with their earlier run directories), and those of the fine-tuning recipes.
"""

from __future__ import annotations

import pytest

from harness.recipe import TRAINING_SECTIONS, load_recipe, recipe_hash
from harness.study.design import load_study
from tests.conftest import RECIPES as RECIPES_DIR

# recipe file -> (recipe hash[:16], run directory name)
RECIPES = {
    "base.yaml": ("7ea785000f631967", "base-9ab71ec1bfae"),  # the quick shape: 150 steps, 4 x 64 drafted tokens (the demo in 5 minutes)
    "cluster/base_7b.yaml": ("1880cdacb57a73d3", "base_7b-d19f9972f737"),  # train.zero_stage 1 -> 2: harness plan's fix to fit 80 GB
    "cluster/deepseek_7b_d1.yaml": ("bb91a4b7b8fa7dd8", "deepseek_7b_d1-e6623d4521b5"),  # train.zero_stage 1 -> 2: harness plan's fix to fit 80 GB
    "cluster/meta_7b_n1.yaml": ("ca0558e8c4f69cf8", "meta_7b_n1-567a221edc59"),  # train.zero_stage 1 -> 2: harness plan's fix to fit 80 GB
    "cluster/meta_7b_n4.yaml": ("e4c6acc763b5e9c5", "meta_7b_n4-356720e1dd5e"),  # train.zero_stage 1 -> 2: harness plan's fix to fit 80 GB
    "collapse/base.yaml": ("31d4e5d398bb4e5d", "collapse_base-fb983c6e31c7"),
    "collapse/meta_n2.yaml": ("fa2713a5dcd4349a", "collapse_meta_n2-35defb8c0539"),
    "collapse/stp.yaml": ("4ba5a6e39f613a92", "collapse_stp-fb983c6e31c7"),
    "deepseek_n2.yaml": ("8d693fa7cb506c31", "deepseek_n2-f284709fa82e"),  # the quick shape: 150 steps, 4 x 64 drafted tokens (the demo in 5 minutes)
    "laptop/base.yaml": ("f110e05d5cee94cb", "base-8267a6e9ab1c"),
    "laptop/deepseek_n2.yaml": ("02e8689fa3337e8c", "deepseek_n2-80e7fe00b698"),
    "laptop/meta_n2.yaml": ("8f64ac64ac8b5c3e", "meta_n2-e30dab642a16"),
    "laptop/meta_n4.yaml": ("fccbb3de11103882", "meta_n4-3b2ff6d23266"),
    "laptop/stp.yaml": ("304eef4ab0ca08f2", "stp-8267a6e9ab1c"),
    "laptop/top.yaml": ("61c3e19a35f02273", "top-c7a5f187ced2"),
    "meta_n2.yaml": ("9b8fbf20aa45d196", "meta_n2-5310d9219882"),  # the quick shape: 150 steps, 4 x 64 drafted tokens (the demo in 5 minutes)
    "probes/induction/base.yaml": ("1e07c40c50fc3d8f", "induction_base-f5325f894f04"),
    "probes/induction/small.yaml": ("d5aacad2bed05689", "induction_small-1eb9b5bb1495"),
    "probes/induction/small_deepseek_d1.yaml": ("5981cf9632e789ba", "induction_small_deepseek_d1-a0602133d9e1"),
    "probes/induction/small_meta_n2.yaml": ("ac46cb59d584d8a3", "induction_small_meta_n2-c877b7963bf0"),
    "probes/induction/small_meta_n4.yaml": ("3719d5ab0329ae85", "induction_small_meta_n4-f6d12729f52c"),
    "probes/induction/small_stp.yaml": ("0ee558365d424cf4", "induction_small_stp-1eb9b5bb1495"),
    "probes/induction/tiny.yaml": ("6c83812290d2f11f", "induction_tiny-7d4fd302a36f"),
    "probes/induction/tiny_deepseek_d1.yaml": ("b771cca88650b8d5", "induction_tiny_deepseek_d1-a9404af07aed"),
    "probes/induction/tiny_meta_n2.yaml": ("d932583a345b72bc", "induction_tiny_meta_n2-6ee59e6acb26"),
    "probes/induction/tiny_meta_n4.yaml": ("0e40e40d6991687f", "induction_tiny_meta_n4-3412f468f04b"),
    "probes/induction/tiny_stp.yaml": ("426137e780190c9a", "induction_tiny_stp-7d4fd302a36f"),
    "probes/polynomial/base.yaml": ("6df9ad18939ef61f", "polynomial_base-31e753ff5990"),
    "probes/polynomial/deepseek_d1.yaml": ("cae62631edb936c0", "polynomial_deepseek_d1-4669ac280739"),
    "probes/polynomial/meta_n2.yaml": ("bfa76002c993b6a3", "polynomial_meta_n2-338ad8b70bfd"),
    "probes/polynomial/meta_n4.yaml": ("d940a8f453c072d3", "polynomial_meta_n4-f1f249f994c1"),
    "probes/polynomial/stp.yaml": ("f6dda142801ac714", "polynomial_stp-31e753ff5990"),
    "stp.yaml": ("9dd5ac2872c5a092", "stp-9ab71ec1bfae"),  # the quick shape: 150 steps, 4 x 64 drafted tokens (the demo in 5 minutes)
    "top.yaml": ("32d314e8daab4eeb", "top-ef8d9682d1ec"),  # the quick shape: 150 steps, 4 x 64 drafted tokens (the demo in 5 minutes)
    # recipes/gpu (issue 22): pinned from their first version
    "gpu/base.yaml": ("22319018d09c1594", "gpu_base-2bfe790af1e8"),
    "gpu/base_125m.yaml": ("a866aaf290e893e0", "base_125m-2bfe790af1e8"),
    "gpu/base_1b.yaml": ("4d9d192596b03a3d", "base_1b-9699f03846c9"),
    "gpu/base_350m.yaml": ("43b0f9dd183bd3c3", "base_350m-2ed3e79d2b45"),
    "gpu/deepseek_125m_d1.yaml": ("15e5b0b837c3bcad", "deepseek_125m_d1-b6d69d616815"),
    "gpu/deepseek_1b_d1.yaml": ("e8db96259dd25672", "deepseek_1b_d1-576ac43f442b"),
    "gpu/deepseek_350m_d1.yaml": ("b3d2142daee6f604", "deepseek_350m_d1-792b0f9cf58b"),
    "gpu/meta_125m_n4.yaml": ("df278e5b913c847c", "meta_125m_n4-558f147217c7"),
    "gpu/meta_1b_n4.yaml": ("092d4c620227ba3a", "meta_1b_n4-ac39afab645c"),
    "gpu/meta_350m_n4.yaml": ("3635bdd863faba5a", "meta_350m_n4-01c03f102a20"),
    "gpu/stp_125m.yaml": ("51b7e853859db8e8", "stp_125m-2bfe790af1e8"),
    "gpu/stp_1b.yaml": ("81d58820db5cfc41", "stp_1b-9699f03846c9"),
    "gpu/stp_350m.yaml": ("57a614e4b34d2286", "stp_350m-2ed3e79d2b45"),
    # added with model.init_from (issue 26); moved to the quick STP start (a checkpoint made in 3 minutes)
    "finetune/base.yaml": ("faa581e0b1371725", "ft_base-daba8cdd3775"),
    "finetune/deepseek_d1.yaml": ("4ac1ae3cd0902524", "ft_deepseek_d1-15768b091b5b"),
    "finetune/deepseek_d1_posthoc.yaml": ("22cf6c2a58629f8d", "ft_deepseek_d1_posthoc-203cb341185a"),
    "finetune/meta_n2.yaml": ("2c0cd175ffcc1569", "ft_meta_n2-d2a3f87584cd"),
    "finetune/meta_n2_posthoc.yaml": ("8dcb045e2a99ff06", "ft_meta_n2_posthoc-718f07a9f69e"),
    "finetune/stp.yaml": ("38ae61934ee75175", "ft_stp-daba8cdd3775"),
    "finetune/untouched.yaml": ("f7533926cfd5868c", "ft_untouched-fbc5536d0906"),
    "finetune/deepseek_d1_distill.yaml": ("7f1a81e7f6268f61", "ft_deepseek_d1_distill-713b58a3917c"),  # deepseek_d1_posthoc.yaml + data.self_distill
}
STUDY_ARMS = {  # every arm of every study, budgeted as `harness study` trains it
    ("studies/gpu_350m.yaml", "deepseek_350m_d1"): "9fdeb696fa370dc8",
    ("studies/gpu_350m.yaml", "meta_350m_n4"): "9408173a57cd83b6",
    ("studies/gpu_350m.yaml", "stp_350m"): "00255234746be162",
    ("studies/gpu_1b.yaml", "deepseek_1b_d1"): "d2adcd46ffc33e9f",
    ("studies/gpu_1b.yaml", "meta_1b_n4"): "b135696a0a6d9fbf",
    ("studies/gpu_1b.yaml", "stp_1b"): "22a04f9d9d6e5e97",
    ("studies/gpu_125m.yaml", "deepseek_125m_d1"): "365c3e4f1dac7eae",
    ("studies/gpu_125m.yaml", "meta_125m_n4"): "539b5627c4d57f90",
    ("studies/gpu_125m.yaml", "stp_125m"): "c2d38e00c2ce4b98",
    ("studies/cluster_7b.yaml", "meta_7b_n1"): "4c057a1e2b527886",  # ZeRO 2
    ("studies/cluster_7b.yaml", "meta_7b_n4"): "80ab8652817322eb",  # ZeRO 2
    ("studies/cluster_7b.yaml", "deepseek_7b_d1"): "197a04fe0156750b",  # ZeRO 2
    ("studies/induction.yaml", "tiny_stp"): "5b7026046bb9992d",
    ("studies/induction.yaml", "tiny_meta_n2"): "d8dba9c9aab3a10a",
    ("studies/induction.yaml", "tiny_meta_n4"): "21cc568acc9cb74c",
    ("studies/induction.yaml", "tiny_deepseek_d1"): "a29794cc145b6c9c",
    ("studies/induction.yaml", "small_stp"): "250bae78f9014a3f",
    ("studies/induction.yaml", "small_meta_n2"): "5b0496d163524de7",
    ("studies/induction.yaml", "small_meta_n4"): "eaeb76c44ec9aa0b",
    ("studies/induction.yaml", "small_deepseek_d1"): "f23884657a2cf12d",
    ("studies/induction.yaml", "tiny_stp_twin"): "5b7026046bb9992d",
    ("studies/quick.yaml", "stp"): "9bd8b38362cdd012",
    ("studies/quick.yaml", "meta_n2"): "461910ddb326607a",
    ("studies/quick.yaml", "deepseek_n2"): "b6c2e0d06bf4da3a",
    ("studies/quick.yaml", "stp_twin"): "9bd8b38362cdd012",
    ("studies/quick.yaml", "stp_short"): "d469f0e772c4c52e",
    ("studies/laptop.yaml", "stp"): "14bc086bca505ce2",
    ("studies/laptop.yaml", "meta_n2"): "2f021a1544665d8d",
    ("studies/laptop.yaml", "deepseek_n2"): "24bad2aadbd9fdd5",
    ("studies/laptop.yaml", "stp_twin"): "14bc086bca505ce2",
    ("studies/laptop.yaml", "stp_short"): "b6d6c6dcc34f9872",
    ("studies/polynomial.yaml", "stp"): "db48d1c1da0104fa",
    ("studies/polynomial.yaml", "meta_n2"): "f0bb3624710896c3",
    ("studies/polynomial.yaml", "meta_n4"): "ecd676031b39d115",
    ("studies/polynomial.yaml", "deepseek_d1"): "7d8f28c71329c61f",
    ("studies/polynomial.yaml", "stp_twin"): "db48d1c1da0104fa",
    ("studies/finetune.yaml", "untouched"): "eebd77b19d609ca9",
    ("studies/finetune.yaml", "stp"): "5d5390b9eb4be0aa",
    ("studies/finetune.yaml", "meta_n2"): "ae69f9973e025ecc",
    ("studies/finetune.yaml", "deepseek_d1"): "5c8fe0a4c69965f9",
    ("studies/finetune.yaml", "meta_n2_posthoc"): "d51094b978e5a20e",
    ("studies/finetune.yaml", "deepseek_d1_posthoc"): "86b58d116cae81b3",
    ("studies/finetune.yaml", "deepseek_d1_distill"): "9584d4b17f315603",
    ("studies/finetune.yaml", "stp_twin"): "5d5390b9eb4be0aa",  # the stp arm's recipe on other seeds
}


@pytest.mark.parametrize("path", sorted(RECIPES))
def test_every_shipped_recipe_keeps_its_hash_and_run_directory(path):
    recipe = load_recipe(RECIPES_DIR / path)
    want_hash, want_dir = RECIPES[path]
    assert (recipe_hash(recipe)[:16], f"{recipe.name}-{recipe_hash(recipe, TRAINING_SECTIONS)[:12]}") == (want_hash, want_dir)


@pytest.mark.parametrize("study", sorted({s for s, _ in STUDY_ARMS}))
def test_every_study_arm_keeps_its_hash(study):
    loaded = load_study(RECIPES_DIR / study)
    want = {arm: h for (s, arm), h in STUDY_ARMS.items() if s == study}
    assert {arm: recipe_hash(r)[:16] for arm, r in loaded.recipes.items() if arm in want} == want


def test_every_recipe_and_study_arm_is_pinned():
    """A new recipe or arm joins the tables above: its hash is then a deliberate, reviewed value."""
    files = {str(p.relative_to(RECIPES_DIR)) for p in RECIPES_DIR.rglob("*.yaml") if p.parent.name != "studies"}
    assert sorted(files - set(RECIPES)) == []
    arms = {(str(p.relative_to(RECIPES_DIR)), arm) for p in (RECIPES_DIR / "studies").glob("*.yaml")
            for arm in load_study(p).recipes}
    assert sorted(arms - set(STUDY_ARMS)) == []


def test_the_fine_tuning_recipes_start_from_the_quick_stp_run_directory():
    """recipes/finetune name the export of `harness run recipes/stp.yaml` by its run directory."""
    stp = load_recipe(RECIPES_DIR / "stp.yaml")
    start = f"../../runs/{stp.name}-{recipe_hash(stp, TRAINING_SECTIONS)[:12]}/export"
    base = load_recipe(RECIPES_DIR / "finetune" / "base.yaml")
    assert (base.model.init_from, base.data.tokenizer.path) == (start, start)
