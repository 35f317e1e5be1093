"""Join-link normalisation: every spelling of one link is one key; pure functions."""

from __future__ import annotations

import base64
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.errors import InputError
from meeting_governance.meetingref import normalise_meeting_ref, thread_key_from_meeting_id

from .helpers import JOIN_URL, THREAD

CANON = normalise_meeting_ref(JOIN_URL)


def test_link_key_is_thread_and_message() -> None:
    assert CANON == (THREAD + "/0").lower()


@pytest.mark.parametrize("variant", [
    unquote(JOIN_URL),
    JOIN_URL.upper(),
    quote(JOIN_URL, safe=""),
    quote(quote(JOIN_URL, safe=""), safe=""),
    JOIN_URL.replace("%3a", "%3A").replace("%40", "%40"),
    f"  <{JOIN_URL}>\n",
    JOIN_URL[:50] + "\n  " + JOIN_URL[50:],
    JOIN_URL.split("?")[0],
    JOIN_URL.replace("https://", ""),
    "msteams:" + JOIN_URL.removeprefix("https://teams.microsoft.com"),
    "https://eur01.safelinks.protection.outlook.com/?url=" + quote(JOIN_URL, safe="") + "&data=05",
    THREAD,
    THREAD + "/0",
    quote(THREAD, safe=""),
])
def test_variants_give_the_same_key(variant: str) -> None:
    assert normalise_meeting_ref(variant) == CANON


def _flip_case(text: str, flips: list[bool]) -> str:
    return "".join(c.swapcase() if flip else c
                   for c, flip in zip(text, flips + [False] * len(text), strict=False))


@given(flips=st.lists(st.booleans(), max_size=len(JOIN_URL)),
       encode=st.sampled_from(["as-is", "decoded", "encoded", "twice"]),
       pad=st.sampled_from(["", " ", "\n", "\t ", " \r\n"]))
def test_case_encoding_whitespace_variants_always_match(flips: list[bool], encode: str,
                                                        pad: str) -> None:
    link = {"as-is": JOIN_URL, "decoded": unquote(JOIN_URL),
            "encoded": quote(JOIN_URL, safe=""),
            "twice": quote(quote(JOIN_URL, safe=""), safe="")}[encode]
    variant = pad + _flip_case(link, flips) + pad
    assert normalise_meeting_ref(variant) == CANON


def test_other_meeting_and_message_differ() -> None:
    assert normalise_meeting_ref(JOIN_URL.replace("NzQ5", "AAAA")) != CANON
    assert normalise_meeting_ref(JOIN_URL.replace("thread.v2/0", "thread.v2/1614709880318")) != CANON


def test_graph_meeting_id_stays_itself_trimmed() -> None:
    mid = "MSo2ZjFjM2E1Mi04ZDBlKjAqKjE5Om1lZXRpbmdfT1RCbE9U/weekly+sync=="
    assert normalise_meeting_ref(f"  {mid}\n") == mid


def test_graph_meeting_id_reveals_its_thread() -> None:
    raw = f"1*dc17674c-81d9-4adb-bfb2-8f6a442e4d04*0**{THREAD}"
    mid = base64.b64encode(raw.encode()).decode().rstrip("=")
    assert thread_key_from_meeting_id(mid) == CANON
    assert thread_key_from_meeting_id("not-base64-at-all") is None


def test_short_meet_link() -> None:
    assert normalise_meeting_ref("https://teams.microsoft.com/meet/123 456 789?p=x") == \
        normalise_meeting_ref("HTTPS://TEAMS.MICROSOFT.COM/meet/123456789") == "meet:123456789"


@pytest.mark.parametrize("bad", ["", "   ", "https://zoom.us/j/123", "weekly sync", "réunion",
                                 "https://teams.microsoft.com/l/chat/0/0", "x" * 5000])
def test_bad_refs_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(InputError, match=r"^meeting: "):
        normalise_meeting_ref(bad)
