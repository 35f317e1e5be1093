"""The bad-input corpus (`tests/data/bad/`, see its README): corrupt media, hostile CSVs, broken
and hostile Graph bodies, ids with path-traversal characters. Each gets a clear error of our
own type (a `GovernanceError`) and a retryable or blocked state; none crashes the process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import func
from sqlmodel import select

from meeting_governance.config import TranscriptionSettings
from meeting_governance.context import AppContext
from meeting_governance.errors import GovernanceError, InputError, TranscriptionError
from meeting_governance.models import DeltaLink, OptOut, Recording
from meeting_governance.optouts import CsvImportError, import_csv
from meeting_governance.pipeline import poll, process
from meeting_governance.transcribe import Transcriber
from mg_emulator.scenario import default_media_dir
from tests.fake_transcriber import FakeTranscriber

from .conftest import (
    BAD_DIR,
    Env,
    RawGraph,
    assert_invariants,
    env_for,
    extra_meeting,
    load_corpus,
    rows,
    scenario_of,
    staging_files,
)

corpus = load_corpus()
MEDIA = BAD_DIR / "media"
SAMPLE = default_media_dir() / "sample-1.m4a"

# WAV headers that declare more audio than the file holds are refused as truncated.
# Header durations that FFmpeg recomputes from the sample tables: the real 6 s are transcribed.
TOLERATED = {"mp4-absurd-duration.m4a"}
WAV_TRUNCATED = {"wav-10h-header.wav", "wav-riff-overflow.wav"}
REJECTED = sorted(p.name for p in MEDIA.iterdir() if p.name not in TOLERATED | WAV_TRUNCATED)


def test_corpus_is_complete_and_small() -> None:
    files = [p for p in BAD_DIR.rglob("*") if p.is_file()]
    payloads = [p for p in files if p.parent.name in ("media", "csv", "graph")]
    assert len(payloads) >= 30
    assert sum(p.stat().st_size for p in files) < 2 * 1024 * 1024
    readme = (BAD_DIR / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in payloads if f"`{p.name}`" not in readme]
    assert missing == [], "every corpus file is described in tests/data/bad/README.md"
    # The files in the repository are what the script makes (seeded, reproducible).
    for folder, made in (("csv", corpus.csv_files()), ("graph", corpus.graph_files())):
        for name, data in made.items():
            assert (BAD_DIR / folder / name).read_bytes() == data, name


# -- media ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def transcriber(whisper_model: Any) -> Transcriber:
    return Transcriber(TranscriptionSettings(), model=whisper_model)


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", [
    *REJECTED, *sorted(WAV_TRUNCATED)])
def test_bad_media_is_a_transcription_error(transcriber: Transcriber, name: str) -> None:
    with pytest.raises(TranscriptionError, match=rf"cannot transcribe {name}: ") as caught:
        transcriber.transcribe(MEDIA / name)
    assert isinstance(caught.value, GovernanceError)
    assert "\n" not in str(caught.value)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_absurd_header_durations_transcribe_what_is_there(transcriber: Transcriber) -> None:
    """mvhd/mdhd/tkhd claim ~8 years; the decoder goes by the samples: 6 s of tone, no words."""
    result = transcriber.transcribe(MEDIA / "mp4-absurd-duration.m4a")
    assert 5.5 < result.duration < 6.5
    assert result.segments == ()


@pytest.mark.slow
def test_bad_media_through_the_pipeline_fails_each_retryably(home: Path, tmp_path: Path,
                                                             whisper_model: Any) -> None:
    """Every corrupt file Graph could serve: its recording fails with a clear reason and a retry
    time; the good recording beside them is stored; one process run handles them all."""
    pairs = [extra_meeting(f"MSo-bad-{i}", f"VjIj-bad-{name}", str(MEDIA / name))
             for i, name in enumerate(REJECTED)]
    pairs.append(extra_meeting("MSo-good", "VjIj-good", str(SAMPLE)))
    with env_for(home, tmp_path / "emulator", whisper_model, scenario_of(pairs)) as e:
        with e.graph() as graph:
            assert poll(e.app, graph).new == len(pairs)
        report = process(e.app, e.services, limit=100)
        assert len(report.outcomes) == len(pairs)
        found = rows(e)
        assert found["VjIj-good"].state == "stored"
        for name in REJECTED:
            rec = found[f"VjIj-bad-{name}"]
            assert rec.state == "failed", name
            assert rec.reason.startswith("TranscriptionError: cannot transcribe"), rec.reason
            assert rec.attempts == 1 and rec.next_attempt_at is not None, name
        assert staging_files(e) == []
        assert_invariants(e)


# -- CSV -----------------------------------------------------------------------------------

# Formula cells (CSV injection) and over-long addresses are refused like any other bad row.
FORMULA = {"formula-name.csv", "formula-plus-name.csv", "formula-at-name.csv",
           "formula-note.csv"}
CSV_CASES: list[Any] = [
    *(name for name in sorted(corpus.csv_files())
      if name not in FORMULA and name != "long-email.csv"),
    "long-email.csv",
    *sorted(FORMULA),
    "generated:6MB-repeated-rows", "generated:50001-rows", "generated:140KB-cell",
]


def _csv(name: str) -> bytes:
    generated = {"generated:6MB-repeated-rows": corpus.big_csv,
                 "generated:50001-rows": corpus.many_rows_csv,
                 "generated:140KB-cell": corpus.huge_cell_csv}
    if name in generated:
        return generated[name]()
    return (BAD_DIR / "csv" / name).read_bytes()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", CSV_CASES)
def test_bad_csv_imports_nothing(sqlite_app: AppContext, name: str) -> None:
    data = _csv(name)
    with pytest.raises(CsvImportError) as caught, sqlite_app.session() as session:
        import_csv(sqlite_app, session, data, actor="coordinator")
    assert isinstance(caught.value, InputError)
    message = str(caught.value)
    assert message and len(message) < 1000 and "\n" not in message
    assert "Traceback" not in message
    with sqlite_app.session() as session:
        assert session.exec(select(func.count()).select_from(OptOut)).one() == 0


def test_limits_are_what_the_corpus_assumes() -> None:
    from meeting_governance import optouts

    assert len(corpus.big_csv()) > optouts.MAX_CSV_BYTES
    data = corpus.many_rows_csv()
    assert len(data) < optouts.MAX_CSV_BYTES and data.count(b"\n") - 1 > optouts.MAX_CSV_ROWS


# -- Graph bodies --------------------------------------------------------------------------

LISTING_ERRORS = [
    "html-instead-of-json.json", "truncated.json", "empty-body.json", "not-an-object.json",
    "value-not-a-list.json", "value-null.json", "item-without-id.json",
    "item-id-not-a-string.json", "item-id-infinite.json", "nan-value.json",
    "nextlink-other-host.json", "nextlink-loop.json",
    "generated:deep-nesting",
]
# An optional object of the wrong shape is ignored: the recording is known by the organiser
# the poll asked about, never by what the body claims.
TOLERATED_LISTINGS = ["organizer-not-an-object.json", "organizer-user-a-list.json"]


def _graph_body(name: str) -> bytes:
    if name == "generated:deep-nesting":
        return corpus.deep_json()
    return (BAD_DIR / "graph" / name).read_bytes()


def _poll_safely(e: Env) -> Any:
    """poll() must answer with a report; anything else escaping is what the test is about."""
    try:
        with e.graph() as graph:
            return poll(e.app, graph)
    except GovernanceError:
        raise
    except Exception as exc:
        raise AssertionError(f"poll crashed with {type(exc).__name__}") from None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", LISTING_ERRORS)
def test_broken_listing_is_a_poll_error_and_stores_nothing(home: Path, tmp_path: Path,
                                                           name: str) -> None:
    pairs = [extra_meeting("meet-1", "rec-0", str(SAMPLE))]
    with env_for(home, tmp_path / "emulator", None, scenario_of(pairs)) as e:
        raw = RawGraph(e.emulator, listing=_graph_body(name))
        try:
            e.settings.graph.base_url = raw.base_url
            report = _poll_safely(e)
        finally:
            raw.close()
        assert report.new == 0 and len(report.errors) == 1, report
        assert any(w in report.errors[0] for w in ("retry later", "retried", "refusing")), report
        assert rows(e) == {}
        with e.app.session() as session:
            assert session.exec(select(DeltaLink)).all() == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", TOLERATED_LISTINGS)
def test_wrong_shaped_optional_fields_are_ignored(home: Path, tmp_path: Path, name: str) -> None:
    pairs = [extra_meeting("meet-1", "rec-0", str(SAMPLE))]
    with env_for(home, tmp_path / "emulator", None, scenario_of(pairs)) as e:
        raw = RawGraph(e.emulator, listing=_graph_body(name))
        try:
            e.settings.graph.base_url = raw.base_url
            report = _poll_safely(e)
        finally:
            raw.close()
        assert report.new == 1 and report.errors == (), report
        with e.app.session() as session:
            stored = session.exec(select(Recording)).one()
        assert stored.organizer_id == e.settings.graph.organizers[0]


@pytest.mark.timeout(120)
def test_listing_with_invalid_utf8_is_read_without_crashing(home: Path, tmp_path: Path) -> None:
    pairs = [extra_meeting("meet-1", "rec-0", str(SAMPLE))]
    with env_for(home, tmp_path / "emulator", None, scenario_of(pairs)) as e:
        raw = RawGraph(e.emulator, listing=_graph_body("invalid-utf8.json"))
        try:
            e.settings.graph.base_url = raw.base_url
            report = _poll_safely(e)
        finally:
            raw.close()
        assert report.errors or report.new == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_huge_listing_page_is_taken_in_one_go(home: Path, tmp_path: Path) -> None:
    """About 2.5 MB, 3 000 recordings and a repeat on one page: each stored once."""
    pairs = [extra_meeting("meet-1", "rec-0", str(SAMPLE))]
    with env_for(home, tmp_path / "emulator", None, scenario_of(pairs)) as e:
        raw = RawGraph(e.emulator, listing=corpus.huge_page())
        try:
            e.settings.graph.base_url = raw.base_url
            report = _poll_safely(e)
            again = _poll_safely(e)
        finally:
            raw.close()
        assert report.new == 3000 and not report.errors
        assert again.new == 0  # idempotent on the recording id
        with e.app.session() as session:
            assert session.exec(select(func.count()).select_from(Recording)).one() == 3000


PARTICIPANT_BODIES = [
    "participants-a-list.json",
    "participants-organizer-a-string.json",
    "attendee-identity-a-string.json",
    "html-instead-of-json.json", "truncated.json", "not-an-object.json",
    "generated:deep-nesting",
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", PARTICIPANT_BODIES)
def test_broken_participants_wait_and_fetch_no_media(home: Path, tmp_path: Path,
                                                     name: str) -> None:
    """The meeting and attendance answers are broken: fail closed (waiting), no media asked."""
    listing = (b'{"value": [{"id": "rec-1", "meetingId": "meet-1", '
               b'"createdDateTime": "2026-11-02T09:30:00Z"}], '
               b'"@odata.deltaLink": "{SELF}?deltaToken=x"}')
    pairs = [extra_meeting("meet-1", "rec-1", str(SAMPLE))]
    with env_for(home, tmp_path / "emulator", None, scenario_of(pairs)) as e:
        raw = RawGraph(e.emulator, listing=listing, other=_graph_body(name))
        try:
            e.settings.graph.base_url = raw.base_url
            assert _poll_safely(e).new == 1
            try:
                report = process(e.app, e.services, limit=10)
            except GovernanceError:
                raise
            except Exception as exc:
                raise AssertionError(f"process crashed with {type(exc).__name__}") from None
        finally:
            raw.close()
        assert len(report.outcomes) == 1
        rec = rows(e)["rec-1"]
        assert rec.state == "waiting", (rec.state, rec.reason)
        assert rec.next_attempt_at is not None
        assert not any(p.endswith("/content") for p in raw.paths)
        assert staging_files(e) == []


# -- ids with path-traversal characters ----------------------------------------------------

TRAVERSAL_IDS = [
    ("../../../tmp/evil-meeting", "../../etc/passwd"),
    ("%2e%2e/%2e%2e/", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
    ("C:\\temp\\x", "..\\..\\windows\\system32\\config"),
    ("meet/../../rec", "rec/./../../../staging/../keys/keys.json"),
]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_traversal_ids_are_quoted_and_never_touch_the_filesystem(home: Path, tmp_path: Path,
                                                                fake_transcriber: FakeTranscriber) -> None:
    pairs = [extra_meeting(m, r, str(SAMPLE)) for m, r in TRAVERSAL_IDS]
    passwd = os.stat("/etc/passwd")
    with env_for(home, tmp_path / "emulator", fake_transcriber, scenario_of(pairs)) as e:
        before = _files(tmp_path)
        with e.graph() as graph:
            assert poll(e.app, graph).new == len(pairs)
        process(e.app, e.services, limit=10)
        found = rows(e)
        for _, recording in TRAVERSAL_IDS:
            assert found[recording].state == "stored", (recording, found[recording].reason)
        # Every id travelled as one percent-encoded path segment: no dot segments, no slashes.
        for request in e.emulator.requests.graph_requests():
            segments = request.path.split("/")
            assert ".." not in segments and "." not in segments, request.path
        content = [unquote(r.path) for r in e.emulator.requests.all()
                   if r.path.endswith("/content")]
        assert len(content) == len(pairs)
        # Nothing appeared outside the data dir; nothing is left in staging.
        new = _files(tmp_path) - before
        assert all(home in p.parents for p in new), sorted(map(str, new))
        assert not [p for p in _files(tmp_path) if p.name in ("passwd", "evil-meeting")]
        assert staging_files(e) == []
        assert_invariants(e)
    after = os.stat("/etc/passwd")
    assert (after.st_mtime_ns, after.st_size) == (passwd.st_mtime_ns, passwd.st_size)


def test_dot_segment_ids_address_their_own_resource(home: Path, tmp_path: Path,
                                                     fake_transcriber: FakeTranscriber) -> None:
    pairs = [extra_meeting("..", ".", str(SAMPLE)), extra_meeting("meet-2", "..", str(SAMPLE))]
    with env_for(home, tmp_path / "emulator", fake_transcriber, scenario_of(pairs)) as e:
        with e.graph() as graph:
            assert poll(e.app, graph).new == 2
        process(e.app, e.services, limit=10)
        states = {k: (r.state, r.reason) for k, r in rows(e).items()}
        # Fail closed either way (never the wrong media), but they should simply be stored.
        assert states == {".": ("stored", "transcribed and stored"),
                          "..": ("stored", "transcribed and stored")}, states


# -- ids longer than the columns that hold them ---------------------------------------------

@pytest.mark.parametrize("field", ["recording-id-1500", "call-id-300"])
def test_overlong_graph_ids_do_not_wedge_discovery(request: pytest.FixtureRequest, home: Path,
                                                   tmp_path: Path, db_url: str,
                                                   field: str) -> None:
    """One recording whose id (or callId) is longer than its column must not stop the poll:
    the well-formed recording beside it is still discovered, every time."""
    import dataclasses

    bad_meeting, bad = extra_meeting("MSo-long", "VjIj-long", str(SAMPLE))
    if field == "recording-id-1500":
        bad = dataclasses.replace(bad, id="R" * 1500)
    else:
        bad = dataclasses.replace(bad, call_id="C" * 300)
    pairs = [(bad_meeting, bad), extra_meeting("MSo-fine", "VjIj-fine", str(SAMPLE))]
    with env_for(home, tmp_path / "emulator", None, scenario_of(pairs), db_url=db_url) as e:
        report = _poll_safely_db(e)
        assert "VjIj-fine" in rows(e), report


def _poll_safely_db(e: Env) -> Any:
    try:
        with e.graph() as graph:
            return poll(e.app, graph)
    except Exception as exc:
        raise AssertionError(f"poll raised {type(exc).__name__}: {str(exc)[:200]}") from None
