"""The static HTML report: self-contained (inline SVG, no scripts or external files), well
formed, and it renders in a headless browser (when Chromium is installed)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from harness.report.compare import find_runs, run_compare
from tests.report.report_helpers import study_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class _Tags(HTMLParser):
    """Counts tags and collects every attribute that could load something from elsewhere."""

    VOID = {"meta", "br", "img", "link", "input", "hr"}

    def __init__(self):
        super().__init__()
        self.counts, self.stack, self.external, self.errors = {}, [], [], []

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        self.external += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    found = find_runs(tuple(str(d) for d in study_runs(root / "runs", late_gain=0.05)), None, None, root, False)
    return run_compare(found, baseline=None, out_dir=root / "out", force=False, log=False, n_resamples=1000)


def test_report_is_self_contained_and_well_formed(report):
    text = (report.out_dir / "report.html").read_text()
    parser = _Tags()
    parser.feed(text)
    assert parser.errors == [] and parser.stack == []
    assert parser.counts["svg"] == 5  # gains (answer first), val loss, per-position ratio, pass@1, acceptance
    assert parser.counts["table"] == 4  # arms, gains with both intervals, verdicts, reported
    assert parser.external == [] and "script" not in parser.counts
    assert "supported at this scale" in text and "meta_n2" in text and "<?xml" not in text


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install -y chromium) for the screenshot")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "report.png"
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,2000", f"--screenshot={shot}", (report.out_dir / "report.html").as_uri()]
    subprocess.run(argv, capture_output=True, timeout=180, check=True)
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1400, 2000)
    # A rendered page: mostly white background, and plenty of dark pixels (text, tables, plots).
    histogram = image.histogram()
    dark = sum(histogram[:100]) / (1400 * 2000)
    assert 0.005 < dark < 0.5
