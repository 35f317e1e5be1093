"""The coordinator's and the DPO's journeys in a real browser: Debian's Chromium driven by
Playwright, against the app served by uvicorn on a loopback port.

Screenshots of the add, review, detail and list pages are written to the folder named by
`SCREENSHOTS_DIR` (`scripts/screenshots` sets it to docs/screenshots); without it they go to the
test's temporary directory, so a normal run never changes the git tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meeting_governance.web.sessions import COOKIE_NAME

from .browser import chromium, new_tab, serve
from .conftest import ACCOUNTS, JOIN_LINK, PASSWORD, Web
from .directory_scenario import (
    MARGARET_ALIAS,
    MARGARET_NAME,
    ORGANISER_NAME,
    PLANNING_LINK,
    SUBJECT,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(web: Web) -> Iterator[str]:
    with serve(web.app) as url:
        yield url


@pytest.fixture
def graph_served(graph_web: Web) -> Iterator[str]:
    """The app of an installation connected to Microsoft Graph (the emulator)."""
    with serve(graph_web.app) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with new_tab(browser) as tab:
        yield tab


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shoot(page: Any, folder: Path, name: str) -> None:
    """A full-page PNG at CSS scale (small files; the text is what matters)."""
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True, scale="css",
                    animations="disabled", caret="hide")


def _sign_in(page: Any, served: str, role: str, start: str = "/optouts") -> None:
    page.goto(f"{served}{start}")
    assert "/login?next=" in page.url
    # The cursor is already in the user-name field.
    assert _focus_is_on(page, element_id="name")
    page.keyboard.type(ACCOUNTS[role])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served}{start}")


def _submit(page: Any, button: str) -> None:
    """Click a submit button and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def _focus_is_on(page: Any, class_name: str = "", element_id: str = "") -> bool:
    """Autofocus is applied after the page has loaded: wait for it (or time out)."""
    attribute, value = ("id", element_id) if element_id else ("className", class_name)
    page.wait_for_function(f"document.activeElement && document.activeElement.{attribute} === "
                           f"'{value}'", timeout=10_000)
    return True


def _console_errors(page: Any) -> list[str]:
    """Console errors (CSP violations, missing files); the app serves no /favicon.ico, which
    Chromium asks for once (not a fault)."""
    errors: list[str] = []

    def record(message: Any) -> None:
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location['url']})")

    page.on("console", record)
    return errors


def _some_opt_outs(web: Web) -> None:
    """A registry that is not empty, so the list page shows what a real one looks like."""
    from datetime import UTC, datetime

    from meeting_governance import optouts

    with web.ctx.session() as db:
        for request in (
                optouts.OptOutRequest(email="alan.turing@contoso.example", name="Alan Turing"),
                optouts.OptOutRequest(object_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                                      covers_recording=False),
                optouts.OptOutRequest(email="ada.lovelace@contoso.example", name="Ada Lovelace",
                                      valid_from=datetime(2026, 6, 1, tzinfo=UTC),
                                      valid_until=datetime(2026, 6, 30, 23, 59, tzinfo=UTC))):
            optouts.add_optout(web.ctx, db, request, actor="web:cora")
        revoked = optouts.add_optout(web.ctx, db, optouts.OptOutRequest(
            email="grace.hopper@contoso.example", name="Grace Hopper"), actor="web:cora")
        optouts.revoke_optout(web.ctx, db, revoked.id, actor="web:dora",
                              reason="Grace asked by e-mail on 3 May")


def test_coordinator_adds_finds_and_cannot_revoke(page: Any, browser: Any, graph_web: Web,
                                                  graph_served: str, shots: Path) -> None:
    """The whole journey on a server connected to Microsoft Graph: the review shows whom the
    address reaches and which meeting the link names before anything is saved."""
    web, served = graph_web, graph_served
    _some_opt_outs(web)
    errors = _console_errors(page)
    _sign_in(page, served, "coordinator")
    page.get_by_role("link", name="Add an opt-out").first.click()
    page.get_by_label("Name (optional)").fill("Margaret Hamilton")
    page.get_by_label("E-mail address").fill("Margaret.Hamilton@Contoso.example")
    page.get_by_label("One meeting").check()
    meeting = page.get_by_label("Teams join link or meeting id")
    meeting.focus()
    page.keyboard.insert_text(PLANNING_LINK)  # what a paste does
    page.get_by_label("Note (optional)").fill("Asked by phone on 2 May.")
    _shoot(page, shots, "add")
    page.get_by_role("button", name="Continue").click()

    main = page.locator("main").inner_text()
    assert "What saving it does" in main and "It cannot stop Teams from recording" in main
    assert "What you still need to do" in main and "Tell the meeting's organiser" in main
    # Whom the address reaches, and the meeting, as Microsoft Graph says (shown, not stored).
    person = page.get_by_role("region", name="Whom it reaches").inner_text()
    assert MARGARET_NAME in person and "Member of this organisation" in person
    assert "Every identifier the directory knows for them (4:" in person
    meeting = page.get_by_role("region", name="The meeting").inner_text()
    assert SUBJECT in meeting and "2031-03-14 10:00 UTC" in meeting
    assert ORGANISER_NAME in meeting and "Yours" in meeting
    assert "could not be checked" not in main
    assert "19:meeting_T3NwcmV5UGxhbm5pbmc@thread.v2" in main
    _shoot(page, shots, "review")
    page.get_by_role("button", name="Save the opt-out").click()
    page.wait_for_url("**/optouts/*?added=1")
    main = page.locator("main").inner_text()
    assert "The opt-out was saved" in main and "Teams can still record" in main
    assert "Only a data protection officer can revoke" in main
    assert page.get_by_role("link", name="Revoke this opt-out").count() == 0
    _shoot(page, shots, "detail")
    optout_url = page.url.split("?")[0]

    page.get_by_role("link", name="Opt-outs", exact=True).click()
    assert "Active" in page.get_by_role("row", name="Margaret Hamilton").inner_text()
    _shoot(page, shots, "list")
    page.get_by_label("Find a person's opt-outs").fill("margaret.hamilton@contoso.example")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == f"{served}/optouts/search"  # a POST: the address is not in the URL
    main = page.locator("main").inner_text()
    assert "1 opt-out with exactly" in main and "cannot find part of a name" in main
    assert "margaret" not in page.url.lower()
    _shoot(page, shots, "search")
    page.get_by_label("Find a person's opt-outs").fill("margaret")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "This does not mean the person has no opt-out." in page.locator("main").inner_text()
    assert errors == []  # no CSP violations, no missing files
    page.goto(optout_url + "/revoke")
    assert "Your role does not allow" in page.locator("main").inner_text()


def test_a_directory_that_cannot_be_read_still_lets_it_be_saved(
        page: Any, graph_served: str, graph_emulator: Any) -> None:
    graph_emulator.faults.set(unavailable_count=1000)
    _sign_in(page, graph_served, "coordinator", start="/optouts/new")
    page.get_by_label("E-mail address").fill(MARGARET_ALIAS)
    _submit(page, "Continue")
    person = page.get_by_role("region", name="Whom it reaches").inner_text()
    assert "Microsoft Graph is busy" in person
    assert "could not be checked — the opt-out matches this address until the directory " \
           "answers" in person
    assert MARGARET_NAME not in page.locator("main").inner_text()
    page.get_by_role("button", name="Save the opt-out").click()
    page.wait_for_url("**/optouts/*?added=1")
    assert "The opt-out was saved" in page.locator("main").inner_text()


def test_dpo_revokes_with_the_persons_confirmation(page: Any, web: Web, served: str) -> None:
    from meeting_governance import optouts

    with web.ctx.session() as db:
        optout_id = optouts.add_optout(web.ctx, db, optouts.OptOutRequest(
            email="grace@example.org", name="Grace Hopper"), actor="web:cora").id
    _sign_in(page, served, "dpo", start=f"/optouts/{optout_id}")
    page.get_by_role("link", name="Revoke this opt-out").click()
    _submit(page, "Revoke")  # no reason: refused, focus on the error
    assert _focus_is_on(page, "error-summary")
    page.get_by_label("The person's confirmation").fill("Grace asked by e-mail on 3 May.")
    page.get_by_role("button", name="Revoke").click()
    page.wait_for_url(f"**/optouts/{optout_id}?revoked=1")
    main = page.locator("main").inner_text()
    assert "The opt-out was revoked." in main and "Grace asked by e-mail on 3 May." in main
    history = page.locator("table").inner_text()
    assert "optout.add" in history and "optout.revoke" in history


def test_a_failed_submit_moves_focus_to_the_error_summary(page: Any, served: str) -> None:
    _sign_in(page, served, "coordinator", start="/optouts/new")
    page.get_by_label("E-mail address").fill("not-an-address")
    page.get_by_label("Meetings between two dates").check()
    page.get_by_label("First day").fill("14/05/2026")  # not the format the hint shows
    _submit(page, "Continue")
    assert _focus_is_on(page, "error-summary")
    summary = page.locator(".error-summary").inner_text()
    assert "E-mail address" in summary and "for example 2026-05-14" in summary
    # The summary's links lead to the fields.
    page.get_by_role("link", name="First day").click()
    assert _focus_is_on(page, element_id="valid_from")
    # Typed as the hint shows it, the date is accepted.
    page.get_by_label("E-mail address").fill("ann@example.org")
    page.get_by_label("First day").fill("2026-05-14")
    page.get_by_label("Last day (included)").fill("2026-5-31")
    _submit(page, "Continue")
    assert "every meeting from 2026-05-14 to 2026-05-31" in page.locator("main").inner_text()


def test_a_pasted_over_long_value_is_reported_not_cut(page: Any, served: str) -> None:
    _sign_in(page, served, "coordinator", start="/optouts/new")
    page.get_by_label("E-mail address").fill("ann@example.org")
    page.get_by_label("One meeting").check()
    page.get_by_label("Teams join link or meeting id").focus()
    pasted = JOIN_LINK + " " + "see you there! " * 300  # a link pasted with the mail around it
    page.keyboard.insert_text(pasted)
    assert len(page.get_by_label("Teams join link or meeting id").input_value()) == len(pasted)
    _submit(page, "Continue")
    assert _focus_is_on(page, "error-summary")
    assert f"Too long: {len(pasted):,} characters, at most 4,000." in page.locator(
        ".error-summary").inner_text()
    assert page.get_by_label("Teams join link or meeting id").input_value() == pasted


def test_too_large_an_upload_gets_the_sites_own_page(page: Any, served: str,
                                                     tmp_path: Path) -> None:
    big = tmp_path / "everyone.csv"
    big.write_text("email\n" + "someone@example.org\n" * 200_000)  # about 4 MB
    _sign_in(page, served, "coordinator", start="/optouts/import")
    page.get_by_label("CSV file").set_input_files(str(big))
    _submit(page, "Import")
    main = page.locator("main").inner_text()
    assert "Too large" in main and "Split a CSV file into smaller files" in main
    assert page.get_by_role("link", name="Skip to main content").count() == 1  # the site's page


def test_a_cookie_replayed_after_sign_out_is_refused(browser: Any, page: Any,
                                                     served: str) -> None:
    _sign_in(page, served, "dpo")
    stolen = [c for c in page.context.cookies() if c["name"] == COOKIE_NAME]
    assert stolen and stolen[0]["httpOnly"] and stolen[0]["sameSite"] == "Lax"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{served}/login?signed_out=1")
    assert "You are signed out." in page.locator("main").inner_text()
    with new_tab(browser) as thief:
        thief.context.add_cookies(stolen)
        thief.goto(f"{served}/dpo")
        assert "/login?next=" in thief.url


def test_keyboard_only(page: Any, served: str) -> None:
    page.goto(f"{served}/login")
    assert _focus_is_on(page, element_id="name")  # no click needed
    page.keyboard.type(ACCOUNTS["coordinator"])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{served}/optouts")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    assert page.get_by_role("heading", name="Opt-outs").is_visible()
