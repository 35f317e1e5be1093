"""The DPO's journey in a real browser (Debian's Chromium through Playwright): sign in, find a
person, download their export, erase with confirmation, and look at the statistics chart."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meeting_governance import holds
from meeting_governance.context import AppContext
from meeting_governance.models import Recording

from ..dsr.helpers import ALICE, BOB, make_transcript, person
from .browser import chromium, new_tab, serve
from .conftest import ACCOUNTS, PASSWORD, Web

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def dpo_served(web: Web) -> Iterator[str]:
    with serve(web.app) as url:
        yield url


@pytest.fixture
def dpo_page(dpo_served: str) -> Iterator[Any]:
    with chromium() as browser, new_tab(browser, accept_downloads=True) as tab:
        yield tab


def _history(ctx: AppContext) -> None:
    """Some months of recordings, so the chart has more than one group of bars."""
    months = {datetime(2026, 7, 6, tzinfo=UTC): (14, 3, 6), datetime(2026, 8, 3, tzinfo=UTC): (9, 6, 2),
              datetime(2026, 9, 7, tzinfo=UTC): (21, 2, 7), datetime(2026, 10, 5, tzinfo=UTC): (11, 0, 5)}
    with ctx.session() as session:
        for when, (seen, opted_out, unknown) in months.items():
            for i in range(seen):
                state, reason = "stored", ""
                if i < opted_out:
                    state, reason = "blocked", "opted out (1 opt-out)"
                elif i < opted_out + unknown:
                    state, reason = "blocked", "participants unknown: no attendance report"
                session.add(Recording(graph_recording_id=f"h-{when:%m}-{i}",
                                      meeting_id=f"hm-{when:%m}-{i}", organizer_id="o",
                                      state=state, reason=reason, first_seen_at=when,
                                      updated_at=when))


def _sign_in(page: Any, served: str) -> None:
    page.goto(f"{served}/dpo")
    assert "/login?next=" in page.url
    page.get_by_label("User name").fill(ACCOUNTS["dpo"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served}/dpo")


def test_find_export_and_erase(dpo_page: Any, dpo_served: str, web: Web,
                               tmp_path: Path) -> None:
    page, served = dpo_page, dpo_served
    alice, bob = person(ALICE), person(BOB)
    shared = make_transcript(web.ctx, words=["zanzibar quokka"], people=[alice, bob],
                             meeting_id="m-1")
    bobs = make_transcript(web.ctx, words=["bravo merger"], people=[bob], meeting_id="m-2")
    held = make_transcript(web.ctx, words=["litigation"], people=[alice], meeting_id="m-3")
    alone = make_transcript(web.ctx, words=["ocelot"], people=[alice], meeting_id="m-4")
    holds.set_hold(web.ctx, reason="Smith v Example Ltd", transcript_id=held.id, actor="dpo")

    _sign_in(page, served)
    assert page.get_by_role("heading", name="DPO desk").is_visible()
    assert "The audit chain is intact" in page.locator("main").inner_text()
    page.get_by_role("navigation", name="DPO pages").get_by_role(
        "link", name="Find a person").click()
    page.get_by_label("E-mail address or Entra object id").fill(ALICE)
    page.get_by_role("button", name="Find").click()
    page.wait_for_load_state()
    assert page.url == f"{served}/dpo/person"  # the address went in the body, not the URL
    # No directory on this server: nothing is shown until the DPO chooses the address alone.
    notice = page.get_by_role("alert").inner_text()
    assert "The directory could not be read" in notice and "Nothing was done" in notice
    assert page.locator("dl.details").count() == 0
    with page.expect_navigation():
        page.get_by_role("button", name="Search by this address only").click()
    assert "Searched offline by the identifier given only" in page.locator("main").inner_text()
    held_list = page.locator("dl.details").inner_text()
    assert "Transcripts of meetings attended\n3" in held_list
    assert "Under legal hold\n1" in held_list
    table = page.get_by_role("table").inner_text()
    assert shared.id in table and held.id in table and alone.id in table
    assert bobs.id not in table
    page.screenshot(path=str(tmp_path / "dpo-person.png"), full_page=True)

    with page.expect_download() as info:
        page.get_by_role("button", name="Export (zip)").click()
    download = info.value
    assert download.suggested_filename.startswith("DSR-")
    assert download.suggested_filename.endswith(".zip")
    data = Path(download.path()).read_bytes()
    bundle = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(bundle.read("manifest.json"))
    assert {m["transcript_id"] for m in manifest["meetings"]} == {shared.id, held.id, alone.id}
    assert download.suggested_filename == f"{manifest['reference']}.zip"

    page.get_by_role("button", name="Erase…").click()
    page.wait_for_url(f"{served}/dpo/person/erase")
    main = page.locator("main").inner_text()
    assert "2 transcripts will be erased" in main
    assert held.id in main and "Smith v Example Ltd" in main
    page.screenshot(path=str(tmp_path / "dpo-erase-confirm.png"), full_page=True)
    page.get_by_role("button", name="Erase 2 transcripts").click()
    page.get_by_role("status").wait_for()
    assert "2 transcripts were erased, 1 held and kept" in page.get_by_role("status").inner_text()
    page.get_by_role("button", name="Back to the person").click()
    page.wait_for_url(f"{served}/dpo/person")
    assert "Transcripts of meetings attended\n1" in page.locator("dl.details").inner_text()


def test_stats_chart(dpo_page: Any, dpo_served: str, web: Web, tmp_path: Path) -> None:
    page, served = dpo_page, dpo_served
    _history(web.ctx)
    _sign_in(page, served)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.get_by_role("link", name="Statistics").first.click()
    page.wait_for_url(f"{served}/dpo/stats")
    chart = page.get_by_role("img", name="Meetings by month")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 200
    table = page.get_by_role("table", name="Meetings by month, as in the chart").inner_text()
    assert "2026-09" in table and "21" in table and "<5" in table
    page.screenshot(path=str(tmp_path / "dpo-stats.png"), full_page=True)
    assert errors == []  # no CSP violations from the inline SVG
