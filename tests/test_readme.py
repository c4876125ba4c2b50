"""README's Layout section describes the house as it is: every module at the package's top
level, every subpackage and every objective appears in it."""

from __future__ import annotations

from tests.conftest import ROOT


def test_layout_names_every_top_level_module_package_and_objective():
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1]
    package = ROOT / "harness"
    modules = [p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    folders = [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()]
    objectives = [p.stem for p in (package / "model" / "objectives").glob("*.py")
                  if p.stem not in ("__init__", "base", "registry")]
    missing = [name for name in modules + folders if name not in layout]
    missing += [name for name in objectives if name not in layout.split("objectives/", 1)[1].split("\n")[0]]
    assert not missing, missing
