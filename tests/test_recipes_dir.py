"""Every YAML under recipes/ validates (house rule 8), and every recipe opens with a header."""

from __future__ import annotations

from harness.recipe import load_recipe
from harness.study.design import is_study, load_study
from tests.conftest import RECIPES


def test_every_recipe_and_study_validates():
    files = sorted(RECIPES.rglob("*.yaml"))
    studies = [f for f in files if is_study(f)]
    recipes = [f for f in files if f not in studies]
    assert len(recipes) >= 9 and len(studies) >= 2
    for path in recipes:
        load_recipe(path)
    for path in studies:
        assert load_study(path).match.matched, path


def test_every_recipe_file_opens_with_a_header_naming_its_command():
    for path in RECIPES.rglob("*.yaml"):
        head = path.read_text().split("\n\n")[0]
        assert head.startswith("# "), path
        assert "harness " in head and "Hardware" in head, path
