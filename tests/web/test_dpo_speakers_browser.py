"""The DPO desk's speaker pages in a real browser (Chromium through Playwright): see how each
label was named, name one after listening (wrong person refused), export the person's own words
or the full transcript with a reason, and remove one person's words after reviewing."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from meeting_governance import dsr, speakers
from meeting_governance.models import AuditEntry, Transcript
from meeting_governance.store import read_content

from ..dsr.helpers import ALICE, ALICE_WORDS, BOB, BOB_WORDS, UNNAMED_WORDS, labelled_transcript
from .browser import chromium, new_tab, serve
from .conftest import ACCOUNTS, Web
from .test_dpo_browser import _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(web: Web) -> Iterator[str]:
    with serve(web.app) as url:
        yield url


@pytest.fixture
def page(served: str) -> Iterator[Any]:
    with chromium() as browser, new_tab(browser, accept_downloads=True) as tab:
        yield tab


def _find(page: Any, who: str) -> None:
    page.get_by_role("navigation", name="DPO pages").get_by_role(
        "link", name="Find a person").click()
    page.get_by_label("E-mail address or Entra object id").fill(who)
    page.get_by_role("button", name="Find").click()
    page.wait_for_load_state()
    with page.expect_navigation():
        page.get_by_role("button", name="Search by this address only").click()


def _bundle_text(page: Any, click: Any) -> str:
    with page.expect_download() as info:
        click()
    bundle = zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes()))
    return "\n".join(bundle.read(n).decode() for n in bundle.namelist())


def test_name_export_and_redact_on_the_desk(page: Any, served: str, web: Web,
                                            tmp_path: Path) -> None:
    row = labelled_transcript(web.ctx)
    with web.ctx.session() as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None
        speakers.record(web.ctx, session, fresh,
                        [speakers.Naming("Speaker 1", 0, "attendance", "alone at 00:00:00")])
    _sign_in(page, served)
    _find(page, BOB)
    page.get_by_role("link", name=row.id).click()
    page.wait_for_url(f"{served}/dpo/transcripts/{row.id}/speakers")
    table = page.get_by_role("table").inner_text()
    assert "Alice Liddell\tattendance" in table and "Speaker 2\tunnamed" in table

    # A person who was not in the meeting is refused, and nothing changes.
    page.get_by_label("Speaker label").select_option("Speaker 2")
    page.get_by_label("The participant it is").fill("stranger@example.org")
    page.get_by_role("button", name="Name this speaker").click()
    page.wait_for_load_state()
    assert "not a participant of this meeting" in page.locator("main").inner_text()
    assert "Speaker 2\tunnamed" in page.get_by_role("table").inner_text()
    page.get_by_label("Speaker label").select_option("Speaker 2")
    page.get_by_label("The participant it is").fill(BOB)
    page.get_by_label("What you heard").fill("reports the numbers every week")
    page.get_by_role("button", name="Name this speaker").click()
    page.get_by_role("status").wait_for()
    assert "Bob Builder\tdpo" in page.get_by_role("table").inner_text()
    page.screenshot(path=str(tmp_path / "dpo-speakers.png"), full_page=True)
    with web.ctx.session() as session:
        named = session.exec(select(AuditEntry).where(
            AuditEntry.action == "speaker.named", AuditEntry.target_id == row.id)).all()
    assert [e.actor for e in named] == ["test", f"web:{ACCOUNTS['dpo']}"]  # audited, by whom

    # Bob's own words; the others' only as times.
    _find(page, BOB)
    text = _bundle_text(page, page.get_by_role("button", name="Export (zip)").click)
    assert BOB_WORDS in text and not any(w in text for w in (*ALICE_WORDS, UNNAMED_WORDS))
    assert "another participant spoke (00:00:00–00:00:04)" in text
    # The full transcript needs a reason; with one, it is given and recorded.
    page.get_by_label("Give the full transcripts").check()
    page.get_by_role("button", name="Export (zip)").click()
    page.wait_for_load_state()
    assert "needs --reason" in page.locator("main").inner_text()
    page.get_by_label("Give the full transcripts").check()
    page.get_by_label("Reason for the full transcript").fill("Tribunal order TB-88")
    text = _bundle_text(page, page.get_by_role("button", name="Export (zip)").click)
    assert BOB_WORDS in text and ALICE_WORDS[0] in text and UNNAMED_WORDS in text
    with web.ctx.session() as session:
        full = [v for v in dsr.list_requests(web.ctx, session) if v.full_transcript]
    assert len(full) == 1
    assert [d.reason for d in dsr.decisions(web.ctx, full[0].reference)] == \
        ["Tribunal order TB-88"]

    # Alice's words out, after a review that counts them.
    _find(page, ALICE)
    page.get_by_role("button", name="Remove their words…").click()
    page.wait_for_url(f"{served}/dpo/person/redact")
    main = page.locator("main").inner_text()
    assert "removed from 1 transcript" in main and "2 segments attributed to them" in main
    assert "1 will be removed, 0 kept" in main  # the unnamed third voice: redact when in doubt
    page.screenshot(path=str(tmp_path / "dpo-redact-confirm.png"), full_page=True)
    page.get_by_role("button", name="Remove their words from 1 transcript").click()
    page.get_by_role("status").wait_for()
    assert "were removed from 1 transcript" in page.get_by_role("status").inner_text()
    with web.ctx.session() as session:
        after = session.get(Transcript, row.id)
        assert after is not None and after.version == 2
        texts = [s["text"] for s in read_content(web.ctx, session, after)["segments"]]
    assert texts == [BOB_WORDS]
