"""The HTML report read in headless Chromium: images load, the summary lists each method, links lead
somewhere, a full-page screenshot is written; a missing plot or method is named in the error."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402

from aestimo.evaluation.browser import CHROMEDRIVER, CHROMIUM, ReportCheckError, _link_failures, check_report  # noqa: E402
from aestimo.evaluation.report import build_html, method_comparison_section  # noqa: E402
from aestimo.pipelines.reporting.nodes import build_report  # noqa: E402

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs them",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY = pl.DataFrame({
    "method": ["layerwise_rank", "zero_shot_ensemble", "zero_shot_ava", "mixing_ceiling"] * 2,
    "k": [10] * 4 + [100] * 4,
    "people": [6, 6, 6, 6, 5, 5, 5, 5],
    "srocc_mean": [0.5, 0.4, 0.3, 0.7, 0.6, 0.4, 0.3, 0.8],
    "srocc_ci_low": [0.45, 0.35, 0.25, 0.65, 0.55, 0.35, 0.25, 0.75],
    "srocc_ci_high": [0.55, 0.45, 0.35, 0.75, 0.65, 0.45, 0.35, 0.85],
    "ceiling": [False, False, False, True] * 2,
})
SHOWN = ["layerwise_rank", "zero_shot_ensemble", "mixing_ceiling"]  # the summary's main rows


def report_inputs() -> dict[str, Any]:
    """build_report's arguments, by name: the one place to change when its signature grows."""
    return {
        "ingest_counts": pl.DataFrame({"source": ["ava"], "images": [3]}),
        "world_statistics": pl.DataFrame(),
        "expert_metrics": pl.DataFrame({"expert": ["ava"], "source": ["ava"], "srocc": [0.6]}),
        "task_vector_similarity": pl.DataFrame({"source_a": ["ava"], "source_b": ["ava"], "cosine": [1.0]}),
        "personalization_summary": SUMMARY,
        "personalization_summary_by_source": SUMMARY.with_columns(pl.lit("flickr_aes").alias("source")),
        "personalization_comparisons": pl.DataFrame(
            {"method": ["layerwise_rank"], "versus": ["zero_shot_ensemble"], "k": [10], "wilcoxon_p": [0.04]}
        ),
        "personalization_vs_reference": pl.DataFrame(
            {"method": ["layerwise_rank"], "versus": ["zero_shot_ensemble"], "k": [10], "people": [5], "mean_diff": [0.1],
             "diff_ci_low": [0.05], "diff_ci_high": [0.15], "wins": [4], "losses": [1], "ties": [0], "wilcoxon_p": [0.06]}),
        "personalization_timings": pl.DataFrame({"method": ["layerwise_rank"], "k": [10], "seconds_per_run": [1.5]}),
        "chosen_settings": pl.DataFrame({"value": [0.1], "k": [10], "people": [5], "srocc_mean": [0.35], "chosen": [True]}),
        "long_tail_metrics": pl.DataFrame({
            "expert": ["ava"] * 4, "variant": ["plain"] * 4, "segment": ["all", "low", "middle", "high"],
            "n": [10, 2, 6, 2], "mae": [0.5, 1.1, 0.2, 1.3], "plcc": [0.6] * 4, "srocc": [0.6] * 4,
        }),
        "long_tail_ablation": pl.DataFrame({"expert": ["ava"], "variant": ["round: none"]}),
        "apds_people": pl.DataFrame({"beta": [5.0], "t": [0.3], "mae": [0.4], "chosen": [True]}),
        "self_training_summary": pl.DataFrame({"method": ["instant"], "k": [10], "people": [7], "srocc_mean": [0.3]}),
        "self_training_comparisons": pl.DataFrame({"method": ["instant+self_training"], "versus": ["instant"]}),
        "personalize_params": {"methods": {"layerwise_rank": {"method": "task_vectors"}}, "protocol": "browser test"},
    }


class _ImageSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        src = dict(attrs).get("src")
        if tag == "img" and src:
            self.sources.append(src)


def write_with_plots(html: str, folder: Path) -> tuple[Path, list[Path]]:
    """Write report.html and, beside it, a tiny real PNG for every image it shows."""
    parser = _ImageSources()
    parser.feed(html)
    assert parser.sources, "the report shows no image"
    pngs = []
    for src in dict.fromkeys(parser.sources):
        png = folder / src
        png.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(2, 1), dpi=40)
        ax.plot([0, 1], [0, 1])
        fig.savefig(png)
        plt.close(fig)
        pngs.append(png)
    page = folder / "report.html"
    page.write_text(html, encoding="utf-8")
    return page, pngs


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, list[Path]]:
    return write_with_plots(build_report(**report_inputs()), tmp_path)


@needs_chromium
def test_report_renders_with_every_image_and_method_and_a_screenshot(report, tmp_path):
    page, pngs = report
    shot = tmp_path / "shots" / "report.png"
    result = check_report(page, SHOWN, screenshot=shot)
    assert result["images"] >= len(pngs) and set(SHOWN) <= set(result["methods"])
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
def test_method_comparison_section_reads_in_a_browser(tmp_path):
    timings = pl.DataFrame({
        "method": ["layerwise_rank", "layerwise_rank", "zero_shot_ensemble"], "source": ["a", "b", "a"],
        "k": [10, 10, 10], "runs": [1, 3, 4], "seconds_per_run": [2.0, 6.0, 0.0001],
    })
    ablation = pl.DataFrame({"prompt": ["a photo", "a good photo"], "srocc_mean": [0.3, 0.31]})
    section = method_comparison_section(SUMMARY, timings, ablation)
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
