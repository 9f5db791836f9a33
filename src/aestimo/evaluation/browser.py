"""Read the HTML report as a reader would: render it in headless Chromium and check what a reader sees.

Tables and links are easy to get wrong silently (a plot written under another name, a method
dropped from the summary); a real browser says whether every image decodes, the summary table
lists each method and every link leads somewhere. It can also save a full-page screenshot.

Chromium and its driver are Debian's ``chromium`` and ``chromium-driver`` packages, found at fixed
paths and handed to Selenium explicitly, so Selenium Manager never runs (and never downloads).
Selenium is imported only when a browser is started: it is a test dependency, not a run's.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH = 1200
MAX_HEIGHT = 30_000  # a taller page is cut here in the screenshot (the checks still read all of it)
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
    "--no-first-run", "--disable-extensions", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--force-device-scale-factor=1", f"--window-size={WIDTH},900",
)

# What the checks read from the rendered page, in one round trip.
_PAGE_FACTS_JS = """
const text = el => el.textContent.trim();
const images = Array.from(document.images).map(i => ({
  src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth}));
const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id)
  .concat(Array.from(document.querySelectorAll('a[name]')).map(a => a.getAttribute('name')));
let table = document.getElementById('summary');
if (table && table.tagName !== 'TABLE') table = table.querySelector('table');
if (!table) {
  const h2 = Array.from(document.querySelectorAll('h2')).find(h => text(h) === 'Personalization');
  for (let el = h2 ? h2.nextElementSibling : null; el && el.tagName !== 'H2'; el = el.nextElementSibling) {
    table = el.tagName === 'TABLE' ? el : el.querySelector('table');
    if (table) break;
  }
}
const methods = table === null ? null : Array.from(table.rows)
  .filter(r => r.cells.length && r.cells[0].tagName === 'TD').map(r => text(r.cells[0]));
return {images, links, ids, methods, height: document.documentElement.scrollHeight};
"""


class ReportCheckError(AssertionError):
    """The report failed one or more checks; ``failures`` lists each one."""

    def __init__(self, html_path: Path, failures: list[str]) -> None:
        self.failures = failures = list(dict.fromkeys(failures))  # an image shown twice fails once
        super().__init__(f"{html_path}: {len(failures)} problem(s):\n" + "\n".join(f"  - {f}" for f in failures))


def chromium_available() -> bool:
    """Whether a report can be rendered here: Chromium, chromedriver and Selenium are all installed."""
    return (
        all(p.is_file() and os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER))
        and importlib.util.find_spec("selenium") is not None
    )


@contextmanager
def _chromium() -> Iterator[Any]:
    """A headless Chromium driven by the system chromedriver; quits however the block ends."""
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: explicit paths already skip Selenium Manager
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def _link_failures(html_path: Path, links: list[str], ids: set[str]) -> list[str]:
    """Links that lead nowhere: a relative file missing on disk, or an in-page anchor with no element."""
    failures = []
    for href in links:
        url = urlsplit(href)
        if url.scheme or url.netloc:  # http:, mailto:, file:, //host: not ours to check
            continue
        if not url.path:
            if url.fragment and unquote(url.fragment) not in ids:
                failures.append(f"link {href!r}: no element with id {unquote(url.fragment)!r}")
            continue
        if not (html_path.parent / unquote(url.path)).exists():
            failures.append(f"link {href!r}: {unquote(url.path)} does not exist beside the report")
    return failures


def _failures(html_path: Path, facts: dict[str, Any], expected_methods: Sequence[str]) -> list[str]:
    failures = [
        f"image {img['src']!r} did not load" for img in facts["images"] if not (img["complete"] and img["width"] > 0)
    ]
    methods = facts["methods"]
    if methods is None:
        failures.append("no summary table (id='summary', or the first table under the 'Personalization' heading)")
    else:
        failures += [f"method {m!r} has no row in the summary table" for m in expected_methods if m not in methods]
    return failures + _link_failures(html_path, facts["links"], set(facts["ids"]))


def _save_full_page(driver: Any, height: int, out_png: Path) -> None:
    """Save the page as one PNG, ``WIDTH`` wide and as tall as the document: the viewport is set to
    that size through the DevTools protocol (a window cannot grow past the screen's height)."""
    out_png.parent.mkdir(parents=True, exist_ok=True)
    size = {"width": WIDTH, "height": min(max(height, 1), MAX_HEIGHT), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", size)
    if not driver.save_screenshot(str(out_png)):
        raise RuntimeError(f"Chromium could not write the screenshot {out_png}")


def check_report(html_path: Path, expected_methods: Sequence[str], screenshot: Path | None = None) -> dict[str, Any]:
    """Render ``html_path`` in headless Chromium and check it: every image loaded, the personalization
    summary table has a row per expected method, no relative link or anchor is broken.

    Raises ``ReportCheckError`` listing every failure. Writes a full-page PNG to ``screenshot`` when
    given (also when the checks fail, so the failure can be looked at). Returns what was checked.
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(html_path)
    with _chromium() as driver:
        driver.get(html_path.as_uri())  # returns after the load event: images have loaded or failed
        facts = driver.execute_script(_PAGE_FACTS_JS)
        if screenshot is not None:
            _save_full_page(driver, int(facts["height"]), Path(screenshot))
    failures = _failures(html_path, facts, expected_methods)
    if failures:
        raise ReportCheckError(html_path, failures)
    return {
        "images": len(facts["images"]), "links": len(facts["links"]), "methods": facts["methods"],
        "height": int(facts["height"]), "screenshot": None if screenshot is None else Path(screenshot),
    }


def screenshot_report(html_path: Path, out_png: Path) -> None:
    """Save a full-page PNG of the report (no checks): for the pipeline to keep beside the report."""
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(html_path)
    with _chromium() as driver:
        driver.get(html_path.as_uri())
        _save_full_page(driver, int(driver.execute_script("return document.documentElement.scrollHeight")), Path(out_png))
