"""Read the HTML report as a reader would: render it in headless Chromium and check what a reader sees.

Tables and links are easy to get wrong silently (a plot written under another name, a method
dropped from the summary, a table wider than the page, the same plot shown twice); a real browser
says whether every image decodes and is shown once, the summary table lists each method, every
link leads somewhere and nothing runs off the right edge. It also saves a full-page screenshot.

Chromium and chromedriver are looked up on ``PATH`` (Debian's ``chromium`` and ``chromium-driver``
packages put them there) and handed to Selenium explicitly, so Selenium Manager never runs (and
never downloads). Where either is missing, or Chromium does not start, :class:`BrowserUnavailable`
says what is missing and how to install it; the pipeline records that and goes on.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

# Names Chromium and its driver go by: Debian's packages, other distributions', Google Chrome's, Ubuntu's snap.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMEDRIVER_NAMES = ("chromedriver", "chromium.chromedriver")
INSTALL_HINT = "on Debian or Ubuntu: sudo apt-get install chromium chromium-driver"
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
  src: i.getAttribute('src'), url: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth}));
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
// What runs off the right edge: the outermost elements past the window that no scrolling box clips.
const root = document.documentElement, viewport = root.clientWidth;
const past = el => el.getBoundingClientRect().right > viewport + 0.5;
const clipped = el => {
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement)
    if (getComputedStyle(p).overflowX !== 'visible') return true;
  return false;
};
const headings = Array.from(document.querySelectorAll('h1, h2, h3'));
const describe = el => {
  const h = headings.filter(h => h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING).pop();
  return `<${el.tagName.toLowerCase()}>` + (h ? ` under '${text(h)}'` : '');
};
const overflowing = root.scrollWidth <= viewport ? [] : Array.from(document.body.querySelectorAll('*'))
  .filter(el => past(el) && !past(el.parentElement) && !clipped(el)).map(describe);
return {images, links, ids, methods, height: root.scrollHeight, width: root.scrollWidth, viewport, overflowing};
"""


class ReportCheckError(AssertionError):
    """The report failed one or more checks; ``failures`` lists each one."""

    def __init__(self, html_path: Path, failures: list[str]) -> None:
        self.failures = failures = list(dict.fromkeys(failures))  # an image shown twice fails once
        super().__init__(f"{html_path}: {len(failures)} problem(s):\n" + "\n".join(f"  - {f}" for f in failures))


class BrowserUnavailable(RuntimeError):
    """No browser to render the report in; the message says what is missing and how to install it."""


def _which(names: Sequence[str]) -> Path | None:
    return next((Path(found) for name in names if (found := shutil.which(name))), None)


def locate_browser() -> tuple[Path, Path]:
    """Chromium and chromedriver on ``PATH`` (with Selenium importable), or :class:`BrowserUnavailable`
    naming each missing part."""
    chromium, driver = _which(CHROMIUM_NAMES), _which(CHROMEDRIVER_NAMES)
    missing = [
        *([f"Chromium (none of {', '.join(CHROMIUM_NAMES)} on PATH)"] if chromium is None else []),
        *([f"chromedriver (none of {', '.join(CHROMEDRIVER_NAMES)} on PATH)"] if driver is None else []),
        *(["the selenium package (pip install selenium)"] if importlib.util.find_spec("selenium") is None else []),
    ]
    if missing:
        raise BrowserUnavailable(f"{' and '.join(missing)} not installed; {INSTALL_HINT}")
    return chromium, driver


def browser_unavailable() -> str | None:
    """Why no report can be rendered here, or None when it can (Chromium itself may still fail to start)."""
    try:
        locate_browser()
    except BrowserUnavailable as absent:
        return str(absent)
    return None


@contextmanager
def _chromium() -> Iterator[Any]:
    """A headless Chromium driven by chromedriver; quits however the block ends. A Chromium that does
    not start (a broken install, a driver of another version) raises :class:`BrowserUnavailable`."""
    chromium, chromedriver = locate_browser()
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: explicit paths already skip Selenium Manager
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in FLAGS:
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(chromedriver)))
    except WebDriverException as err:
        why = next(iter((err.msg or "").strip().splitlines()), type(err).__name__).split("; For documentation")[0]
        raise BrowserUnavailable(f"{chromium} did not start under {chromedriver}: {why}; {INSTALL_HINT}") from err
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


def _figure_key(url: str) -> str:
    """What makes two images the same figure: their bytes, a local file's or a ``data:`` URI's (one plot
    saved under two names, or inlined beside its file, is still shown twice), else the address itself."""
    parts = urlsplit(url)
    if parts.scheme == "data":
        header, _, payload = url.partition(",")
        data = base64.b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
    elif parts.scheme == "file" and (path := Path(unquote(parts.path))).is_file():
        data = path.read_bytes()
    else:
        return url
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _short(src: str | None) -> str:
    """An image's ``src`` for a message: an inline ``data:`` URI can be megabytes long."""
    return repr(src if src is None or len(src) <= 80 else src[:60] + "...")


def _duplicate_figures(images: list[dict[str, Any]]) -> list[str]:
    """One failure per figure the page shows more than once, by address or by content."""
    shown: dict[str, list[str]] = defaultdict(list)
    for img in images:
        if img.get("url"):
            shown[_figure_key(img["url"])].append(img["src"])
    failures = []
    for srcs in shown.values():
        names = list(dict.fromkeys(srcs))
        if len(names) == 1 and len(srcs) > 1:
            failures.append(f"figure {_short(names[0])} is shown {len(srcs)} times")
        elif len(names) > 1:
            failures.append(f"figures {', '.join(map(_short, names))} are the same image, shown {len(srcs)} times")
    return failures


def _overflow_failures(facts: dict[str, Any]) -> list[str]:
    """The page wider than the window (a horizontal scrollbar), naming what runs off its right edge."""
    if facts["width"] <= facts["viewport"]:
        return []
    wide = facts["overflowing"]
    culprits = ", ".join(wide[:3]) + (f" and {len(wide) - 3} more" if len(wide) > 3 else "") or "something"
    return [
        f"the page is {facts['width']} px wide in a {facts['viewport']} px window: {culprits} "
        f"{'run' if len(wide) > 1 else 'runs'} off the right edge; put wide content in a box that scrolls "
        "(report.table_html does) or let it wrap"
    ]


def _failures(html_path: Path, facts: dict[str, Any], expected_methods: Sequence[str]) -> list[str]:
    failures = [
        f"image {_short(img['src'])} did not load" for img in facts["images"] if not (img["complete"] and img["width"] > 0)
    ]
    failures += _duplicate_figures(facts["images"]) + _overflow_failures(facts)
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
    """Render ``html_path`` in headless Chromium, ``WIDTH`` px wide, and check it: every image loaded
    and no figure shown twice, the personalization summary table has a row per expected method, no
    relative link or anchor is broken, the page is no wider than the window.

    Raises ``ReportCheckError`` listing every failure, :class:`BrowserUnavailable` where no browser
    starts. Writes a full-page PNG to ``screenshot`` when given (also when the checks fail, so the
    failure can be looked at). Returns what was checked.
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
        "height": int(facts["height"]), "width": int(facts["width"]), "viewport_width": int(facts["viewport"]),
        "screenshot": None if screenshot is None else Path(screenshot),
    }

