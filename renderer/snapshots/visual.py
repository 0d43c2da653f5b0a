"""Visual snapshots: each email drawn by Chromium at 600 and 375 px, compared by pixels.

Playwright drives Debian's chromium (``/usr/bin/chromium``, or ``MAILSMITH_CHROMIUM``;
``playwright install`` is never needed). The page may fetch nothing: images from the
email's servers are refused, so a screenshot depends on the HTML alone.

Two screenshots differ when the share of differing pixels passes the tolerance,
after an allowance for anti-aliasing: a pixel whose colour moved by more than
``threshold`` (0-255, any channel) still counts as the same when, in each image,
its colour lies within the range of the other image's colours one pixel around it:
what an edge drawn a fraction of a pixel away gives. A changed word, a colour or
a layout still counts (a uniform area has no range to hide in).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segments.errors import MailsmithError

if TYPE_CHECKING:
    from renderer.snapshots.runner import SnapshotOptions, SnapshotReport

WIDTHS = (600, 375)
DEFAULT_TOLERANCE = 1e-5  # share of pixels: about 25 of a 600 x 4000 screenshot
DEFAULT_THRESHOLD = 24
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserUnavailableError(MailsmithError):
    """Chromium or Playwright is missing, so no visual snapshot can be taken."""

    exit_code = 1


@dataclass(frozen=True)
class PixelDiff:
    """How two screenshots differ: the share and count of differing pixels, whether the
    sizes differ, and an image marking the differences (None when they are equal)."""

    share: float
    pixels: int
    resized: bool
    image: bytes | None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's sync API)."""
    executable = Path(os.environ.get("MAILSMITH_CHROMIUM", CHROMIUM))
    if not executable.is_file():
        raise BrowserUnavailableError(
            f"no Chromium at {executable}",
            hint="apt-get install chromium, or set MAILSMITH_CHROMIUM to its path",
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailableError(
            "--visual needs Playwright", hint="pip install playwright (not playwright install)"
        ) from None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, width: int) -> Any:
    """A page ``width`` px wide that refuses every request (the email's images too)."""
    page = browser.new_page(viewport={"width": width, "height": 800}, device_scale_factor=1)
    page.route("**/*", lambda route: route.abort())
    return page


def screenshot(page: Any, html: str) -> bytes:
    """The whole email drawn in ``page``, as PNG."""
    page.set_content(html, wait_until="load")
    data: bytes = page.screenshot(full_page=True, type="png", animations="disabled")
    return data


def screenshots(htmls: Mapping[str, str], widths: tuple[int, ...] = WIDTHS) -> dict[str, bytes]:
    """``{stem}.{width}.png`` to PNG bytes for every HTML and width, in one browser (one
    page per width: a page drawn anew for each email gives the same pixels)."""
    shots: dict[str, bytes] = {}
    with chromium() as browser:
        for width in widths:
            page = new_page(browser, width)
            try:
                for stem, html in htmls.items():
                    shots[f"{stem}.{width}.png"] = screenshot(page, html)
            finally:
                page.close()
    return dict(sorted(shots.items()))


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _neighbours(image: np.ndarray) -> Iterator[np.ndarray]:
    """``image`` shifted by each of the nine offsets of a 3 x 3 window (edges repeated)."""
    height, width = image.shape[:2]
    padded = np.pad(image, [(1, 1), (1, 1)] + [(0, 0)] * (image.ndim - 2), mode="edge")
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            yield padded[dy : dy + height, dx : dx + width]


def _within_range(image: np.ndarray, other: np.ndarray, margin: int) -> np.ndarray:
    """Per pixel of ``image``: every channel lies between the darkest and the lightest
    value of ``other`` within one pixel (give or take ``margin``), as a value resampled
    from ``other`` at a sub-pixel offset does."""
    low = high = other
    for shifted in _neighbours(other):
        low, high = np.minimum(low, shifted), np.maximum(high, shifted)
    inside = (image >= low - margin) & (image <= high + margin)
    return np.asarray(inside.all(axis=2), dtype=bool)


def pixel_difference(before: bytes, after: bytes, threshold: int = DEFAULT_THRESHOLD) -> PixelDiff:
    """Compare two PNG screenshots (see the module docs for the anti-aliasing allowance)."""
    old, new = _pixels(before), _pixels(after)
    if old.shape != new.shape:
        total = max(old.shape[0] * old.shape[1], new.shape[0] * new.shape[1])
        return PixelDiff(1.0, total, True, _side_by_side(old, new))
    differ = np.abs(old - new).max(axis=2) > threshold
    if differ.any():  # the anti-aliasing allowance
        margin = threshold // 3
        differ &= ~(_within_range(new, old, margin) & _within_range(old, new, margin))
    count = int(differ.sum())
    image = _marked(new, differ) if count else None
    return PixelDiff(count / differ.size, count, False, image)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _marked(image: np.ndarray, differ: np.ndarray) -> bytes:
    """The new screenshot faded to grey, differing pixels in red."""
    grey = (image.mean(axis=2, keepdims=True) * 0.3 + 255 * 0.7).repeat(3, axis=2)
    grey[differ] = (230, 0, 40)
    return _png(grey)


def _side_by_side(old: np.ndarray, new: np.ndarray) -> bytes:
    """Screenshots of different sizes: both on one canvas, the stored one left."""
    height = max(old.shape[0], new.shape[0])
    canvas = np.full((height, old.shape[1] + new.shape[1] + 8, 3), 230, dtype=np.int16)
    canvas[: old.shape[0], : old.shape[1]] = old
    canvas[: new.shape[0], old.shape[1] + 8 :] = new
    return _png(canvas)


def compare_screenshots(
    htmls: Mapping[str, str], report: SnapshotReport, options: SnapshotOptions
) -> None:
    """Screenshot each case's HTML (``htmls``: case stem to HTML) and compare with the
    stored PNGs: new and changed ones go into ``report.visual`` (and, with ``update``,
    into the snapshot folder); changed ones into the HTML report as well."""
    from renderer.snapshots.runner import VisualChange
    from renderer.snapshots.store import write_file

    folder = report.folder
    tolerance = DEFAULT_TOLERANCE if options.tolerance is None else options.tolerance
    shown: list[tuple[VisualChange, bytes, bytes, bytes | None]] = []
    for path, png in screenshots(htmls).items():
        stored = folder / path
        if not stored.is_file():
            change = VisualChange(path, new=True)
        else:
            before = stored.read_bytes()
            if before == png:
                continue
            diff = pixel_difference(before, png)
            if diff.share <= tolerance and not diff.resized:
                continue  # within the tolerance: the stored PNG stays, byte for byte
            change = VisualChange(path, False, diff.share, diff.pixels, diff.resized)
            shown.append((change, before, png, diff.image))
        report.visual.append(change)
        if options.update and write_file(folder, path, png):
            report.written.append(path)
    if shown:
        target = options.report or folder.parent / f"{folder.name}.report"
        report.visual_report = write_visual_report(target, report.campaign, shown, tolerance)


def write_visual_report(
    target: Path,
    campaign: str,
    shown: list[tuple[Any, bytes, bytes, bytes | None]],
    tolerance: float,
) -> Path:
    """``index.html`` in ``target``: each changed screenshot stored / new / difference,
    side by side, the images beside it. Returns the page's path."""
    from renderer.reports.pages import render_page
    from renderer.snapshots.store import write_file

    rows = []
    for number, (change, before, after, image) in enumerate(shown, start=1):
        names = {"before": f"{number}-stored.png", "after": f"{number}-new.png"}
        write_file(target, names["before"], before)
        write_file(target, names["after"], after)
        if image is not None:
            names["diff"] = f"{number}-diff.png"
            write_file(target, names["diff"], image)
        rows.append({"change": change, "images": names})
    page = render_page("visual.html.j2", campaign=campaign, rows=rows, tolerance=tolerance)
    write_file(target, "index.html", page)
    return target / "index.html"
