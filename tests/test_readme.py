"""The front door stays a front door, and the Layout names the house as it is.

README.md answers what, how and where in a screen (the rest lives in docs/, one page per topic,
each page it links must exist); docs/ARCHITECTURE.md's Layout names every module at the package's
top level, every subpackage and every objective."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_layout_names_every_top_level_module_package_and_objective():
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    layout = architecture.split("## Layout", 1)[1]
    package = ROOT / "harness"
    modules = [p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    folders = [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()]
    objectives = [p.stem for p in (package / "model" / "objectives").glob("*.py")
                  if p.stem not in ("__init__", "base", "registry")]
    missing = [name for name in modules + folders if name not in layout]
    missing += [name for name in objectives if name not in layout.split("objectives/", 1)[1].split("\n")[0]]
    assert not missing, missing


def test_readme_is_a_front_page_with_two_commands_and_working_links():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 130, "README grew past a front page: move detail to docs/"
    assert "make demo" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text(), "CI must call README's test command"
    pages = set(re.findall(r"docs/[A-Za-z_]+\.md", readme))
    assert len(pages) >= 8
    missing = [page for page in pages if not (ROOT / page).is_file()]
    assert not missing, missing


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in readme]
    assert not unlinked, unlinked
