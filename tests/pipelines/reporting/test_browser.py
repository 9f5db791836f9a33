"""The HTML report read in headless Chromium: images load and show once, the summary lists each method,
links lead somewhere, nothing runs off the right edge, a full-page screenshot is written; each problem is
named in the error. Where no browser is installed the pipeline says so and goes on."""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402

from aestimo.evaluation import browser  # noqa: E402
from aestimo.evaluation.browser import ReportCheckError, _duplicate_figures, _link_failures, check_report  # noqa: E402
from aestimo.evaluation.report import build_html, method_comparison_section, table_html  # noqa: E402
from aestimo.pipelines.reporting.nodes import build_report, check_report_in_browser  # noqa: E402
from tests.pipelines.reporting.report_inputs import SHOWN, SUMMARY, report_inputs  # noqa: E402

WHY_NOT = browser.browser_unavailable()
needs_chromium = pytest.mark.skipif(
    WHY_NOT is not None, reason=f"needs Chromium and chromedriver to render the report: {WHY_NOT}; .ci/run installs them"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCROLL_BOX = "<div class='scroll'>"


class _ImageSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        src = dict(attrs).get("src")
        if tag == "img" and src:
            self.sources.append(src)


def image_sources(html: str) -> list[str]:
    parser = _ImageSources()
    parser.feed(html)
    return parser.sources


def tiny_png(path: Path, slope: float) -> Path:
    """A real, small PNG; plots of different ``slope`` differ in their bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2, 1), dpi=40)
    ax.plot([0, 1], [0, slope])
    fig.savefig(path)
    plt.close(fig)
    return path


def write_with_plots(html: str, folder: Path) -> tuple[Path, list[Path]]:
    """Write report.html and, beside it, a tiny real PNG, different for each, for every image it shows."""
    sources = image_sources(html)
    assert sources, "the report shows no image"
    pngs = [tiny_png(folder / src, slope) for slope, src in enumerate(dict.fromkeys(sources), start=1)]
    page = folder / "report.html"
    page.write_text(html, encoding="utf-8")
    return page, pngs


def wide_summary() -> pl.DataFrame:
    """The summary's methods with 40 number columns: wider than any window."""
    return pl.DataFrame({"method": SHOWN, **{f"metric_number_{i}": [0.123456] * len(SHOWN) for i in range(40)}})


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, list[Path]]:
    return write_with_plots(build_report(**report_inputs()), tmp_path)


@needs_chromium
def test_report_renders_with_every_image_and_method_and_a_screenshot(report, tmp_path):
    page, pngs = report
    shot = tmp_path / "shots" / "report.png"
    result = check_report(page, SHOWN, screenshot=shot)
    assert result["images"] == len(pngs) and set(SHOWN) <= set(result["methods"])  # each plot shown once
    assert result["width"] <= result["viewport_width"] == browser.WIDTH
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    width = int.from_bytes(data[16:20], "big")  # the IHDR chunk: width, then height
    height = int.from_bytes(data[20:24], "big")
    assert width == 1200 and height == result["height"] > 900  # the whole page, not one window of it


@needs_chromium
def test_a_missing_plot_and_a_missing_method_are_named(report):
    page, pngs = report
    gone = next(p for p in pngs if p.name == "gains.png")
    gone.unlink()
    with pytest.raises(ReportCheckError) as err:
        check_report(page, [*SHOWN, "ghost_method"])
    message = str(err.value)
    assert "personalization/gains.png" in message and "ghost_method" in message
    assert len(err.value.failures) == 2  # nothing else is reported


@needs_chromium
def test_a_wide_table_passes_in_its_scroll_box_and_fails_without_it(tmp_path):
    good = build_html([("Personalization", table_html(wide_summary()))], "browser test")
    assert good.count(SCROLL_BOX) == 1
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "report.html").write_text(good, encoding="utf-8")
    result = check_report(tmp_path / "good" / "report.html", SHOWN)
    assert result["width"] == result["viewport_width"]  # the box scrolls, the page does not

    bad = good.replace(SCROLL_BOX, "<div>")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "report.html").write_text(bad, encoding="utf-8")
    with pytest.raises(ReportCheckError) as err:
        check_report(tmp_path / "bad" / "report.html", SHOWN)
    [failure] = err.value.failures
    assert f"px wide in a {browser.WIDTH} px window" in failure and "<table> under 'Personalization'" in failure


@needs_chromium
def test_a_figure_shown_twice_fails_by_name_by_content_and_inline(tmp_path):
    a, b, c = (tiny_png(tmp_path / f"{name}.png", slope) for slope, name in enumerate("abc", start=1))
    shutil.copy(a, tmp_path / "a_again.png")
    inline_b, inline_c = ("data:image/png;base64," + base64.b64encode(p.read_bytes()).decode() for p in (b, c))
    table = table_html(pl.DataFrame({"method": SHOWN}))

    def check(*sources: str) -> list[str]:
        page = tmp_path / "report.html"
        images = "".join(f"<img src='{src}' alt='plot'>" for src in sources)
        page.write_text(build_html([("Personalization", table + images)], "browser test"), encoding="utf-8")
        try:
            check_report(page, SHOWN)
        except ReportCheckError as err:
            return err.failures
        return []

    assert check("a.png", "b.png", inline_c) == []  # three different plots, one of them inline
    assert check("a.png", "b.png", "a.png") == ["figure 'a.png' is shown 2 times"]
    assert check("a.png", "a_again.png") == ["figures 'a.png', 'a_again.png' are the same image, shown 2 times"]
    [inline_twice] = check(inline_c, "a.png", inline_c)
    assert inline_twice == f"figure '{inline_c[:60]}...' is shown 2 times"
    [file_and_inline] = check("b.png", inline_b)
    assert file_and_inline.startswith("figures 'b.png', 'data:image/png;base64,") and "same image" in file_and_inline


def test_duplicate_figures_are_keyed_by_address_when_no_file_is_there():
    images = [{"src": "x.png", "url": "file:///nowhere/x.png"}, {"src": "x.png", "url": "file:///nowhere/x.png"},
              {"src": "y.png", "url": "file:///nowhere/y.png"}, {"src": None, "url": ""}]
    assert _duplicate_figures(images) == ["figure 'x.png' is shown 2 times"]


@needs_chromium
def test_method_comparison_section_reads_in_a_browser(tmp_path):
    timings = pl.DataFrame({
        "method": ["layerwise_rank", "layerwise_rank", "zero_shot_ensemble"], "source": ["a", "b", "a"],
        "k": [10, 10, 10], "runs": [1, 3, 4], "seconds_per_run": [2.0, 6.0, 0.0001],
    })
    ablation = pl.DataFrame({"prompt": ["a photo", "a good photo"], "srocc_mean": [0.3, 0.31]})
    section = method_comparison_section(SUMMARY, timings, {"the prompt's contents": ablation})
    assert "<strong>layerwise_rank</strong> (0.500 [0.450, 0.550])" in section  # best at k = 10, ceiling aside
    assert "<td>mixing_ceiling</td><td>ceiling</td>" in section
    assert "<td>5</td>" in html_row(section, "layerwise_rank")  # seconds per run pooled over sources by runs
    assert "a good photo" in section
    page, _ = write_with_plots(build_html([("Personalization", section)], "browser test"), tmp_path)
    assert check_report(page, ["layerwise_rank", "zero_shot_ava", "mixing_ceiling"])["images"] == 2


def html_row(section: str, method: str) -> str:
    """The last table row of ``section`` that starts with ``method`` (the seconds table comes last)."""
    return section[section.rindex(f"<tr><td>{method}</td>"):].split("</tr>")[0]


def test_broken_links_are_found_on_disk_and_by_id(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a b.csv").write_text("x")
    links = ["plots/a%20b.csv", "plots/missing.csv#top", "#summary", "#nowhere", "https://example.org/", "mailto:x@y"]
    failures = _link_failures(tmp_path / "report.html", links, {"summary"})
    assert len(failures) == 2
    assert "plots/missing.csv" in failures[0] and "nowhere" in failures[1]


def run_node(folder: Path) -> dict:
    """The pipeline's check node on a report written where the parameters say."""
    html = build_report(**report_inputs())
    page, _ = write_with_plots(html, folder)
    return check_report_in_browser(html, SUMMARY, {"report_path": str(page)})


def test_without_chromium_the_node_records_why_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(browser, "CHROMIUM_NAMES", ("no-such-chromium-here",))
    result = run_node(tmp_path)
    assert result["checked"] is False
    assert "Chromium (none of no-such-chromium-here on PATH)" in result["reason"]
    assert "apt-get install chromium chromium-driver" in result["reason"]
    assert not (tmp_path / "report.png").exists()


@pytest.mark.skipif(
    shutil.which("chromedriver") is None or importlib.util.find_spec("selenium") is None,
    reason="needs chromedriver on PATH and selenium to start a (broken) Chromium",
)
def test_a_chromium_that_does_not_start_is_recorded_not_raised(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "broken-chromium"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(browser, "CHROMIUM_NAMES", ("broken-chromium",))
    result = run_node(tmp_path / "report")
    assert result["checked"] is False and f"{fake} did not start" in result["reason"]


@needs_chromium
def test_the_node_checks_a_good_report_and_keeps_a_screenshot_beside_it(tmp_path):
    result = run_node(tmp_path)
    assert result["checked"] is True and set(SHOWN) <= set(result["methods"])
    assert result["width"] <= result["viewport_width"]
    assert Path(result["screenshot"]) == tmp_path / "report.png" and (tmp_path / "report.png").is_file()
