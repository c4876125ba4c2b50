"""The guarantees a sandbox states are the ones its configuration gives (the hostile-program
tests check that they hold)."""

from __future__ import annotations

from harness.eval.sandbox import guarantees


def test_every_guarantee_is_stated(isolated):
    stated = isolated.describe()
    assert set(guarantees.KEYS) <= set(stated)
    assert all(isinstance(stated[key], str) and stated[key] for key in guarantees.KEYS)
    assert stated["verdicts"].endswith("HumanEval 0 of 164, MBPP 0 of 974, sanitized MBPP 0 of 427")


def test_memory_and_processes_say_what_bounds_them(isolated):
    stated = isolated.describe()
    if isolated.hierarchy is not None:
        assert stated["memory"].startswith(f"{isolated.config.memory_mb} MB for the whole sandbox")
        assert "pids.max" in stated["processes"] and stated["cgroup"].startswith("v")
    else:
        assert "per process (RLIMIT_AS)" in stated["memory"] and "kernel memory" in stated["memory"]
        assert "fork is denied" in stated["processes"] and stated["cgroup"].startswith("none: ")


def test_identity_follows_the_privileges(isolated):
    identity = isolated.describe()["identity"]
    assert identity.startswith("own uid per parallel program") if isolated.launch.switch_uid else \
        identity == "own user namespace per program"  # fmt: skip


def test_lines_read_a_summary_as_well_as_describe():
    summary = {"sandbox_kind": "bwrap", "sandbox_memory": "64 MB", "humaneval/pass_at_1": 0.5}
    assert guarantees.as_lines(summary) == ["sandbox bwrap: memory: 64 MB"]


def test_the_checkers_budget_is_stated(isolated):
    checker = isolated.describe()["checker"]
    budget_mb = 512 + 32 * isolated.config.value_kb // 1024
    assert checker.startswith(f"{budget_mb} MB and {isolated.cpu_limit} s of CPU per check")
    assert ("one cgroup of their own" in checker) == (isolated.hierarchy is not None)
