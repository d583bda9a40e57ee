"""The dashboard in real headless Chromium (Debian's, driven by Playwright) in front of a real
gateway, broker and simulated venue: log in, watch a press arrive live, acknowledge it, resolve it
with a root cause, and see the report change. Screenshots go to test-output/browser/."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from gateway.service import Gateway
from gateway.web.server import WebServer
from web_rig import MANAGER, PASSWORD, STAFF, serve

SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Debian's Chromium as root in a container, with nothing reaching out to the network on its own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]
LIVE_S = 10_000  # ms Playwright waits for something pushed by the server to show


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def server(gateway: Gateway) -> Iterator[WebServer]:
    s = serve(gateway)
    yield s
    s.stop()


@pytest.fixture
def page(browser: Browser, server: WebServer) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    yield pg
    context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page: Page, username: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    expect(page.locator("#whoami")).to_contain_text(username)


def pareto_count(page: Page, cause: str) -> int:
    row = page.locator(f'.root-cause[data-cause="{cause}"]')
    if row.count() == 0:
        return 0
    return int(row.first.get_attribute("data-count") or 0)


def test_press_appears_live_is_acknowledged_and_resolved_in_the_browser(page: Page, sim: Any, gateway: Gateway) -> None:
    log_in(page, MANAGER)
    page.goto("/reports")
    before = pareto_count(page, "kitchen_delay")
    page.goto("/")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=LIVE_S)
    expect(page.locator("#empty")).to_be_visible()

    sim.button_at("T12").press()
    card = page.locator("article.card", has_text="T12")
    expect(card).to_be_visible(timeout=LIVE_S)  # pushed by the server: the page was not reloaded
    expect(card.locator(".paged")).to_contain_text("Ana", timeout=LIVE_S)
    expect(card.locator(".age")).to_have_text(re.compile(r"^0:0[0-9]$"))
    sim.button_at("T1").press()
    expect(page.locator("article.card")).to_have_count(2, timeout=LIVE_S)
    expect(page.locator("article.card").first).to_contain_text("T12")  # the longer wait first
    shot(page, "board")

    expect(card.locator(".ack-form select")).to_have_value("ana")  # entered for the person paged
    card.locator("button.ack").click()
    expect(card.locator(".state")).to_have_text("acknowledged", timeout=LIVE_S)
    expect(card.locator(".responder")).to_have_text("Ana")
    button = sim.button_at("T12")
    assert button.wait_for(r"FEEDBACK acknowledged", 10) is not None  # the customer sees someone is coming

    card.locator("a.open").click()
    page.select_option("#action", "replaced")
    page.fill("#compensation-input", "free dessert")
    page.fill("#cost", "6.50")
    page.select_option("#root-cause-input", "kitchen_delay")
    page.fill("#notes-input", "kitchen was two cooks short")
    shot(page, "resolve-form")
    page.click("#resolve")
    expect(page.locator("#state")).to_have_text("resolved")
    expect(page.locator("#root-cause")).to_have_text("kitchen_delay")
    expect(page.locator("#compensation")).to_contain_text("free dessert (6.50)")
    assert button.wait_for(r"FEEDBACK resolved", 10) is not None

    page.goto("/")
    expect(page.locator("article.card", has_text="T12")).to_have_count(0)
    expect(page.locator("article.card", has_text="T1")).to_have_count(1)  # the other call still waits
    page.goto("/reports")
    assert pareto_count(page, "kitchen_delay") == before + 1
    expect(page.locator("#pareto")).to_be_visible()
    shot(page, "report")
    page.goto("/reports/weekly")
    shot(page, "weekly")


def test_staff_sees_the_board_but_no_reports(page: Page, sim: Any) -> None:
    log_in(page, STAFF)
    expect(page.locator("nav")).not_to_contain_text("Reports")
    response = page.goto("/reports")
    assert response is not None and response.status == 403
    page.goto("/devices")
    expect(page.locator("#dev-btn-t12")).to_be_visible()
    expect(page.locator("#dev-btn-t12 .state")).to_have_text("online", timeout=LIVE_S)
    shot(page, "devices")


def test_wrong_password_shows_an_error_not_the_board(page: Page) -> None:
    page.goto("/login")
    page.fill("#username", MANAGER)
    page.fill("#password", "not the password")
    page.click("#login")
    expect(page.locator("#login-error")).to_have_text("wrong name or password")
    expect(page).to_have_url(re.compile(r"/login$"))
