"""``mailsmith preview`` in a real browser: Playwright driving Debian's chromium.

The app loads; choosing a recipient or forcing a variant changes the email; the phone
view is 375 px and stacks the columns; the explain panel lists segments and blocks;
editing a block updates the open page by itself; a broken template shows the overlay
(file and line) while the server stays up, and fixing it clears the overlay. The
screenshot in docs/preview.png is taken here.

Without ``/usr/bin/chromium`` (or Playwright) the tests are skipped, unless
``MAILSMITH_REQUIRE_BROWSER=1`` (CI sets it), where they fail instead.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from renderer.serve.server import PreviewServer
from renderer.serve.session import PreviewSession
from tests.conftest import HOSTILE_ID, HOSTILE_NAME, HOSTILE_REJECTED_ID, copy_demo_campaign

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "preview.png"
WAIT = 30_000  # ms: a reload recompiles the templates on a busy 2-core machine

pytestmark = pytest.mark.browser


def _unavailable(reason: str) -> None:
    if os.environ.get("MAILSMITH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def campaign_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_demo_campaign(tmp_path_factory.mktemp("preview-browser") / "campaign", 80)


@pytest.fixture(scope="module")
def server(campaign_file: Path) -> Iterator[PreviewServer]:
    running = PreviewServer(PreviewSession(campaign_file), port=0, watch=True)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def page(browser: Any, server: PreviewServer) -> Iterator[Any]:
    """The app, opened at 1680 x 1000; nothing but the app's own server is fetched
    (the emails' remote images are refused)."""
    page = browser.new_page(viewport={"width": 1680, "height": 1000})
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(server.url) else route.abort()
        ),
    )
    page.goto(server.url)
    page.wait_for_selector("#recipient-list li.on", timeout=WAIT)
    wait_for_email(page)
    try:
        yield page
    finally:
        page.close()


def wait_for_email(page: Any, text: str = "Juniper") -> None:
    for frame in ("#frame-desktop", "#frame-phone"):
        body = page.frame_locator(frame).locator("body")
        body.get_by_text(text).first.wait_for(timeout=WAIT)


def email_text(page: Any, frame: str = "#frame-desktop") -> str:
    return str(page.frame_locator(frame).locator("body").inner_text(timeout=WAIT))


def choose(page: Any, recipient_id: str) -> None:
    page.fill("#search", recipient_id)
    page.wait_for_selector(f'#recipient-list li[data-id="{recipient_id}"]', timeout=WAIT)
    page.click(f'#recipient-list li[data-id="{recipient_id}"]')
    page.wait_for_function(
        "id => document.querySelector('#recipient-meta').textContent.startsWith(id + ' ')",
        arg=recipient_id,
        timeout=WAIT,
    )
    wait_for_email(page)


def sendable(server: PreviewServer, segment: str | None = None) -> list[Any]:
    return [r for r in server.session.find(segment=segment, limit=10_000) if not r.held_out]


def boxes(frame: Any, selector: str) -> list[dict[str, float]]:
    return list(
        frame.locator(selector).evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return {width: r.width, height: r.height, x: r.x, y: r.y}; })"
        )
    )


def test_the_app_loads_with_list_inbox_line_and_email(page: Any) -> None:
    assert page.locator("#recipient-list li").count() > 20
    assert page.inner_text("#inbox-sender") == "Juniper & Pine"
    assert "your autumn picks" in page.inner_text("#inbox-subject") or "3 picks" in (
        page.inner_text("#inbox-subject")
    )
    assert "KB of Gmail's 102 KB clip" in page.inner_text("#size")
    assert page.locator("#rejected li").count() >= 1
    assert page.get_attribute("#frame-desktop", "sandbox") == ""  # no scripts in emails
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))


@pytest.mark.slow  # the browser end to end; one quick case stays in the default run
def test_choosing_a_recipient_changes_inbox_line_and_email(
    page: Any, server: PreviewServer
) -> None:
    first, *others = sendable(server)
    subject = server.session.render(first.id).subject
    second = next(r for r in others if server.session.render(r.id).subject != subject)
    choose(page, first.id)
    before = page.inner_text("#inbox-subject"), email_text(page)
    assert before[0] == subject
    choose(page, second.id)
    assert page.inner_text("#inbox-subject") == server.session.render(second.id).subject
    assert email_text(page) != before[1]


@pytest.mark.slow  # the browser end to end; one quick case stays in the default run
def test_forcing_a_variant_changes_the_email(page: Any, server: PreviewServer) -> None:
    recipient = next(r for r in sendable(server) if "vip" not in r.segments)
    choose(page, recipient.id)
    page.select_option('select[data-experiment="subject_test"]', "B")
    page.wait_for_function(
        "() => document.querySelector('#inbox-subject').textContent.includes('3 picks')",
        timeout=WAIT,
    )
    page.select_option('select[data-experiment="offer_test"]', "control")
    wait_for_email(page, "Knitwear Week")
    control = email_text(page)
    page.select_option('select[data-experiment="offer_test"]', "free_shipping")
    page.wait_for_function(
        "() => document.querySelector('#recipient-meta').textContent"
        ".includes('offer_test=free_shipping')",
        timeout=WAIT,
    )
    wait_for_email(page, "Free shipping on everything")
    assert email_text(page) != control


@pytest.mark.slow  # the browser end to end; one quick case stays in the default run
def test_the_phone_view_is_375_px_and_stacks_the_columns(page: Any) -> None:
    phone = page.locator("#frame-phone").bounding_box()
    desktop = page.locator("#frame-desktop").bounding_box()
    assert phone["width"] == 375 and desktop["width"] == 600
    assert abs(phone["y"] - desktop["y"]) < 1  # side by side
    selector = "div[class*='mj-column-per-33']"
    wide = boxes(page.frame_locator("#frame-desktop").locator("body"), selector)
    narrow = boxes(page.frame_locator("#frame-phone").locator("body"), selector)
    assert len(wide) >= 3 and len(narrow) == len(wide)
    assert len({round(b["y"]) for b in wide[:3]}) == 1  # one row on a desktop
    assert len({round(b["y"]) for b in narrow[:3]}) == 3  # stacked on a phone
    assert all(b["width"] > 300 for b in narrow[:3])


@pytest.mark.slow  # the browser end to end; one quick case stays in the default run
def test_the_explain_panel_lists_segments_and_blocks(page: Any, server: PreviewServer) -> None:
    lapsed = sendable(server, "journey:lapsed")[0]
    choose(page, lapsed.id)
    page.wait_for_selector('#explain-segments tr[data-segment="lapsed"]', timeout=WAIT)
    segments = page.eval_on_selector_all(
        "#explain-segments tr", "rows => rows.map(r => r.dataset.segment)"
    )
    assert {"vip", "lapsed", "engaged", "champions"} <= set(segments)
    assert "✓" in page.inner_text('#explain-segments tr[data-segment="lapsed"]')
    winback = page.inner_text('#explain-blocks tr[data-block="winback"]')
    assert "✓" in winback and "show_if lapsed: yes" in winback
    assert "show_if vip: no" in page.inner_text('#explain-blocks tr[data-block="vip_offer"]')


@pytest.mark.slow  # the browser end to end; one quick case stays in the default run
def test_editing_a_block_updates_the_open_page(
    page: Any, server: PreviewServer, campaign_file: Path
) -> None:
    lapsed = sendable(server, "journey:lapsed")[0]
    choose(page, lapsed.id)
    page.evaluate("() => { window.notReloaded = true; }")
    block = campaign_file.parent / "blocks" / "winback.mjml"
    good = block.read_text(encoding="utf-8")
    try:
        block.write_text(good.replace("WE'VE MISSED YOU", "COME BACK SOON"), encoding="utf-8")
        wait_for_email(page, "COME BACK SOON")
        assert page.evaluate("() => window.notReloaded") is True  # no navigation
        assert page.locator(f'#recipient-list li.on[data-id="{lapsed.id}"]').count() == 1
    finally:
        block.write_text(good, encoding="utf-8")
    wait_for_email(page, "MISSED YOU")


@pytest.mark.slow  # the browser end to end; one quick case stays in the default run
def test_a_broken_template_shows_the_overlay_until_fixed(
    page: Any, server: PreviewServer, campaign_file: Path
) -> None:
    template = campaign_file.parent / "templates" / "retail_weekly.mjml"
    good = template.read_text(encoding="utf-8")
    lines = good.splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if "{{" in line) + 1
    lines[number - 1] = lines[number - 1].replace("{{", "{{ (", 1)
    try:
        template.write_text("".join(lines), encoding="utf-8")
        page.wait_for_selector("#overlay:not([hidden])", timeout=WAIT)
        assert page.inner_text("#overlay-where") == f"{template}:{number}"
        assert "syntax error" in page.inner_text("#overlay-message")
        assert page.locator("#overlay-source .at").count() == 1
        with urllib.request.urlopen(server.url + "api/status", timeout=30) as response:
            assert response.status == 200  # the server stays up
    finally:
        template.write_text(good, encoding="utf-8")
    page.wait_for_selector("#overlay", state="hidden", timeout=WAIT)


@pytest.mark.slow  # the browser end to end; one quick case stays in the default run
def test_hostile_profile_values_show_as_text(page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.fill("#search", "hostile@")
    page.wait_for_function(
        "() => document.querySelectorAll('#recipient-list li').length === 1", timeout=WAIT
    )
    page.click("#recipient-list li")
    page.wait_for_function(
        "id => document.querySelector('#recipient-meta').textContent.startsWith(id + ' ')",
        arg=HOSTILE_ID,
        timeout=WAIT,
    )
    assert HOSTILE_ID in page.inner_text("#recipient-list li")  # the id, as text
    assert page.inner_text("#inbox-subject").startswith(HOSTILE_NAME)  # the name, as text
    assert page.locator("#recipient-list b, #inbox script, #inbox b").count() == 0
    assert HOSTILE_REJECTED_ID in page.text_content("#rejected")  # listed (folded)
    assert page.locator("#rejected i").count() == 0
    assert dialogs == []


@pytest.mark.slow  # the browser end to end; one quick case stays in the default run
def test_personas_are_listed_and_open_with_their_explain_panel(page: Any) -> None:
    page.wait_for_selector('#persona-list li[data-persona="cart_abandoner"]', timeout=WAIT)
    page.click('#persona-list li[data-persona="cart_abandoner"]')
    page.wait_for_function(
        "() => document.querySelector('#recipient-meta').textContent"
        ".startsWith('persona cart_abandoner')",
        timeout=WAIT,
    )
    wait_for_email(page, "Grace")
    assert "Grace" in page.inner_text("#inbox-subject")
    matched = '#explain-segments tr[data-segment="cart_abandoner"] td:first-child .yes'
    assert page.locator(matched).count() == 1
    assert page.locator("#recipient-list li.on").count() == 0  # one selection at a time
