"""Every reported number in harness/report/published.py matches docs/FACTS.md exactly."""

from __future__ import annotations

import re

from harness.report.published import BLOG_ROWS, REPORTED
from tests.conftest import ROOT

FACTS = (ROOT / "docs" / "FACTS.md").read_text()


def _table1(data: str) -> dict:
    """{(n, benchmark): pass@1} from Table 1's bullet for one data setting."""
    label = {"200B tokens": "200B tokens:", "1T tokens (4 epochs)": "1T tokens (4 epochs):", "313B bytes": "313B bytes:"}[data]
    block = FACTS.split(label, 1)[1].split("\n  - ", 1)[0]
    out = {}
    for n, mbpp, he in re.findall(r"n=(\d+) MBPP ([\d.]+)/[\d./]+, HumanEval ([\d.]+)/", block):
        out[(n, "MBPP")], out[(n, "HumanEval")] = float(mbpp), float(he)
    return out


def test_meta_table_1_rows():
    rows = [r for r in REPORTED if r.where == "Table 1"]
    assert len(rows) == 8
    for r in rows:
        table = _table1(r.data)
        assert r.baseline == table[("1", r.benchmark)], r
        assert r.mtp == table[(r.n.split("=")[1], r.benchmark)], r


def test_meta_table_s7_rows():
    rows = [r for r in REPORTED if r.where == "Table S7"]
    assert len(rows) == 12
    for r in rows:
        m = re.search(rf"(?<![\d.]){re.escape(r.model)} (\d+\.\d)->(\d+\.\d) / (\d+\.\d)->(\d+\.\d)", FACTS)
        mb, he = (float(m[1]), float(m[2])), (float(m[3]), float(m[4]))
        assert (r.baseline, r.mtp) == (mb if r.benchmark == "MBPP" else he), r


def test_deepseek_table_4_rows():
    rows = [r for r in REPORTED if r.method == "deepseek"]
    assert len(rows) == 4
    for r in rows:
        size = "small" if r.model.startswith("2.4B") else "large"
        block = FACTS.split(f"  - {size} (", 1)[1].split("\n", 2)[:2]
        text = " ".join(block)
        m = re.search(rf"{r.benchmark}[^;]*?(\d+\.\d+) -> (\d+\.\d+)", text)
        assert (r.baseline, r.mtp) == (float(m[1]), float(m[2])), r


def test_blog_rows_and_flags():
    table = re.findall(r"\| (Meta|DeepSeek) \| ([^|]+) \| [^|]+ \| ([+-][\d.]+) \| ([+-][\d.]+)", FACTS)
    assert len(table) == 4
    for method, model, mbpp, he in table:
        for bench, gain in (("MBPP", mbpp), ("HumanEval", he)):
            row = next(r for r in BLOG_ROWS if r.method == method.lower() and r.benchmark == bench
                       and r.model.split()[0] == model.split()[0])
            assert row.gain == float(gain), row
    flagged = [r for r in BLOG_ROWS + REPORTED if r.flag]
    assert any("+0.6" in r.flag and "-0.1" in r.flag for r in flagged)
    assert all(r.gain == round(r.mtp - r.baseline, 1) for r in REPORTED)


def test_probe_claims_quote_facts_and_hold_no_numbers_read_off_plots():
    from harness.report.published import PROBE_CLAIMS

    assert {c.probe for c in PROBE_CLAIMS} == {"induction", "polynomial"}
    section = FACTS.split("## Meta's small-model probes", 1)[1].split("\n## ", 1)[0]
    flat = " ".join(section.split())
    for claim in PROBE_CLAIMS:
        assert claim.numbers is None, claim  # the paper only plots these
        assert claim.claim in flat, claim.claim  # quoted verbatim from FACTS.md
        assert claim.where.split(", ")[-1] in flat, claim.where
        assert claim.metric.split("/")[0] == claim.probe


def test_every_objective_but_the_baseline_has_reported_rows_or_says_why_not():
    """A method the harness trains either has published rows (checked above against
    FACTS.md) or an entry saying why none are entered, which `compare` prints."""
    from harness.model.objectives.registry import registered
    from harness.report.published import NOT_ENTERED, all_reported

    covered = {r.method for r in all_reported()} | {n.method for n in NOT_ENTERED}
    methods = {kind for kind, cls in registered().items() if "baseline" not in cls.claims}
    assert methods <= covered, methods - covered
    for n in NOT_ENTERED:
        assert n.source.split(",")[0] in FACTS and n.why
