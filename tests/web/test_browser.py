"""The coordinator's journey in a real browser: Debian's Chromium driven by Playwright, against
the app served by uvicorn on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import chromium, new_tab, serve
from .conftest import ACCOUNTS, JOIN_LINK, PASSWORD, Web

pytestmark = [pytest.mark.browser, pytest.mark.slow]

@pytest.fixture
def served(web: Web) -> Iterator[str]:
    with serve(web.app) as url:
        yield url


@pytest.fixture
def page(served: str) -> Iterator[Any]:
    with chromium() as browser, new_tab(browser) as tab:
        yield tab


def test_add_find_revoke_by_join_link(page: Any, served: str, tmp_path: Path) -> None:
    page.goto(f"{served}/optouts")
    assert "/login?next=" in page.url
    page.get_by_label("User name").fill(ACCOUNTS["dpo"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served}/optouts")

    page.get_by_role("link", name="Add an opt-out").first.click()
    page.get_by_label("Name (optional)").fill("Margaret Hamilton")
    page.get_by_label("E-mail address").fill("Margaret.Hamilton@Contoso.example")
    page.get_by_label("One meeting").check()
    meeting = page.get_by_label("Teams join link or meeting id")
    meeting.focus()
    page.keyboard.insert_text(JOIN_LINK)  # what a paste does
    page.get_by_role("button", name="Continue").click()
    summary = page.locator(".summary-box")
    assert "Margaret Hamilton" in summary.inner_text()
    assert "one meeting" in summary.inner_text()
    page.get_by_role("button", name="Save the opt-out").click()
    page.wait_for_url("**/optouts/*?added=1")
    assert "The opt-out was saved" in page.locator("main").inner_text()
    optout_url = page.url.split("?")[0]

    page.get_by_role("link", name="Opt-outs", exact=True).click()
    row = page.get_by_role("row", name="Margaret Hamilton")
    assert "Active" in row.inner_text()
    page.screenshot(path=str(tmp_path / "optouts-list.png"), full_page=True)

    page.get_by_label("Search by name or e-mail address").fill("margaret.hamilton@contoso.example")
    page.keyboard.press("Enter")
    page.wait_for_url("**/optouts?q=*")
    assert "1 result" in page.locator("main").inner_text()
    page.get_by_role("link", name="Margaret Hamilton").click()
    assert page.url == optout_url

    page.get_by_role("link", name="Revoke this opt-out").click()
    page.get_by_label("Why is it revoked?").fill("She withdrew the request.")
    page.get_by_role("button", name="Revoke").click()
    page.wait_for_url(optout_url)
    main = page.locator("main").inner_text()
    assert "Revoked" in main and "She withdrew the request." in main
    history = page.locator("table").inner_text()
    assert "optout.add" in history and "optout.revoke" in history

    page.get_by_role("link", name="Opt-outs", exact=True).click()
    assert "Revoked" in page.get_by_role("row", name="Margaret Hamilton").inner_text()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.reload()
    assert errors == []  # no CSP violations, no missing files


def test_login_with_the_keyboard_only(page: Any, served: str) -> None:
    page.goto(f"{served}/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "name":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "name"
    page.keyboard.type(ACCOUNTS["coordinator"])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{served}/optouts")
    assert page.get_by_role("heading", name="Opt-outs").is_visible()
