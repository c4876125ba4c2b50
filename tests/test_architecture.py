"""The house follows the data (docs/ARCHITECTURE.md): imports run down the floors, no two modules
import each other (one type-only tie at most), reading a recipe loads no runtime, no folder
holds more than 20 modules, and the run directory's file names live in one module."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "harness"
# Floors, bottom up (docs/ARCHITECTURE.md); a module's floor is that of its longest listed prefix.
FLOORS = {
    "harness": 0,  # errors, hashing, atomic, rundir, ranks, devices, threads, console, plotting, config_tree
    "harness.launch.preemption": 0, "harness.launch.slurm_env": 0,  # signals and rank variables
    "harness.recipe": 1, "harness.model.config": 1, "harness.model.counting": 1, "harness.model.objectives": 1,
    "harness.model.pretrained_config": 1,
    "harness.model.decoding": 1, "harness.model.kv_cache": 1, "harness.data.config": 1,
    "harness.data.synthetic.config": 1, "harness.train.config": 1, "harness.eval.config": 1,
    "harness.eval.sandbox.config": 1, "harness.tracking.config": 1, "harness.containers": 1,
    "harness.data": 2, "harness.model": 3, "harness.train": 4, "harness.eval": 5,
    "harness.plan": 6, "harness.run": 6, "harness.tracking": 6, "harness.containers.base": 6,
    "harness.containers.build": 6, "harness.containers.context": 6, "harness.containers.engine": 6,
    "harness.containers.run": 6, "harness.study": 7, "harness.report": 7, "harness.launch": 7,
    "harness.cli": 8, "harness.__main__": 8,
}
# Objectives are plug-ins: one file holds an objective's config (ground floor, read with the
# recipe) and its modules, which import the trunk inside functions only (STYLE rule 4).
ALLOWED_UP = {("harness.model.objectives.", "harness.model.trunk"),
              ("harness.model.objectives.", "harness.model.sequential_heads")}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(imports at run time, imports under TYPE_CHECKING), harness modules only."""
    found, runtime, typing_only = modules(), defaultdict(set), defaultdict(set)
    for name, path in found.items():
        tree = ast.parse(path.read_text())
        guarded = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in found:
                    target = target.rpartition(".")[0]
                if target.startswith("harness") and target != name:
                    (typing_only if id(node) in guarded else runtime)[name].add(target)
    return runtime, typing_only


def floor(name: str) -> int:
    if name.endswith(".cli"):
        return 8
    return FLOORS[max((p for p in FLOORS if name == p or name.startswith(p + ".")), key=len)]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_at_run_time_and_at_most_one_type_only_tie():
    runtime, typing_only = imports()
    assert cycles(runtime) == []
    both = {k: runtime.get(k, set()) | typing_only.get(k, set()) for k in set(runtime) | set(typing_only)}
    assert len(cycles(both)) <= 1, cycles(both)


def test_imports_run_down_the_floors():
    runtime, _ = imports()
    up = [(a, b) for a, targets in runtime.items() for b in targets if floor(b) > floor(a)
          and not any(a.startswith(src) and b == dst for src, dst in ALLOWED_UP)]
    assert up == [], up


def test_reading_a_recipe_loads_no_runtime():
    code = ("import sys, harness.recipe, harness.study.design\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('harness', 'torch', 'mlflow'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=ROOT).stdout.split()
    assert not [m for m in loaded if m.startswith(("torch", "mlflow"))]
    for package in ("harness.eval.sandbox", "harness.tracking", "harness.eval.benchmarks", "harness.train"):
        runtime = [m for m in loaded if m.startswith(package + ".") and not m.endswith(".config")]
        assert runtime == [], runtime


def test_no_folder_holds_more_than_twenty_modules():
    counts = defaultdict(int)
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            counts[path.parent.relative_to(ROOT).as_posix()] += 1
    assert counts and max(counts.values()) <= 20, {k: v for k, v in counts.items() if v > 20}


def test_the_run_directorys_file_names_live_in_one_module():
    names = ['"stages.json"', '"plan.json"', '"recipe.yaml"', '"summary.json"', '"metrics.jsonl"', '"per_position.npy"',
             '"per_position_trajectory.npz"', '"acceptance.json"', '"run.lock"', '"checkpoints"', '"eval.tmp"',
             '"export.tmp"', '"params.json"', '"tags.json"', '"artifacts.jsonl"', '_greedy.jsonl"', 'nll_{task}.jsonl"']
    spelled = {n: sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py") if n in p.read_text())
               for n in names}
    assert all(where == ["harness/rundir.py"] for where in spelled.values()), spelled
