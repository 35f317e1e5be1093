"""HTTP behaviour: throttling, 5xx storms, bad bodies, error bodies, quoting, link safety."""

from __future__ import annotations

import socket
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.errors import GraphError
from meeting_governance.graph.client import odata_string, parse_retry_after, quote_segment

from .emulator_scenario import MEETING_FULL, ODD_MEETING, ORG_A


def _url(client, meeting=MEETING_FULL):
    return client.url("users", ORG_A, "onlineMeetings", meeting)


def test_429_then_success_honours_fractional_retry_after(emulator, client, sleeps):
    emulator.faults.set(throttle_count=2, throttle_retry_after="2.128")
    assert client.get_json(_url(client))["id"] == MEETING_FULL
    assert [r.status for r in emulator.requests.graph_requests()] == [429, 429, 200]
    assert len(sleeps.waits) == 2
    for wait in sleeps.waits:
        assert 2.128 <= wait <= 2.128 * 1.1  # never earlier than asked, a little jitter


def test_retry_after_is_capped(emulator, make_client, sleeps):
    client = make_client(max_retry_after_s=5)
    emulator.faults.set(throttle_count=1, throttle_retry_after="3600")
    client.get_json(_url(client))
    assert sleeps.waits == [5]


def test_504_is_retried_too(emulator, client, sleeps):
    emulator.faults.set(unavailable_count=1, unavailable_status=504)
    assert client.get_json(_url(client))["id"] == MEETING_FULL
    assert len(sleeps.waits) == 1


def test_503_storm_outlasting_the_budget_is_a_retryable_error(emulator, make_client, sleeps):
    client = make_client(max_retries=3)
    emulator.faults.set(unavailable_count=100)
    with pytest.raises(GraphError) as info:
        client.get_json(_url(client), kind="meeting")
    error = info.value
    assert error.retryable and error.status == 503
    assert error.code == "ServiceUnavailable" and error.request_id
    assert "retry later" in str(error)
    assert len(emulator.requests.graph_requests()) == 4  # 1 + max_retries
    assert len(sleeps.waits) == 3


def test_malformed_body_is_a_clear_retryable_error(emulator, client):
    emulator.faults.set(malformed_json_count=1)
    with pytest.raises(GraphError, match="malformed or truncated JSON") as info:
        client.get_json(_url(client))
    assert info.value.retryable
    assert client.get_json(_url(client))["id"] == MEETING_FULL  # once only


def test_truncated_body_is_a_clear_retryable_error(emulator, client):
    emulator.faults.set(malformed_json_count=1, truncated_json=True)
    with pytest.raises(GraphError, match="malformed or truncated JSON") as info:
        client.get_json(_url(client))
    assert info.value.retryable


def test_graph_error_body_gives_code_and_request_id(emulator, client):
    with pytest.raises(GraphError) as info:
        client.get_json(client.url("users", ORG_A, "onlineMeetings", "no-such-meeting"))
    error = info.value
    assert error.status == 404 and error.code == "NotFound"
    assert error.request_id and error.request_id in str(error)
    assert not error.retryable


def test_connection_errors_back_off_then_give_up(emulator, make_client, sleeps):
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    client = make_client(base_url=f"https://127.0.0.1:{dead_port}/v1.0", max_retries=4,
                         backoff_base_s=0.5, backoff_max_s=2, connect_timeout_s=2)
    with pytest.raises(GraphError, match="could not be reached") as info:
        client.get_json(client.url("users", ORG_A))
    assert info.value.retryable
    assert sleeps.waits == [0.375, 0.75, 1.5, 1.5]  # random_fn=0.5: 3/4 of min(max, base*2^n)


def test_500_is_retryable_but_not_retried_here(emulator, client, sleeps):
    emulator.faults.set(unavailable_count=1, unavailable_status=500)
    with pytest.raises(GraphError) as info:
        client.get_json(_url(client))
    assert info.value.retryable and info.value.status == 500
    assert sleeps.waits == []


def test_unreachable_authority_is_retryable(emulator, make_client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    client = make_client(authority_host=f"https://127.0.0.1:{dead_port}")
    with pytest.raises(GraphError, match="sign-in authority") as info:
        client.get_json(_url(client))
    assert info.value.retryable


def test_next_link_to_another_host_is_refused(emulator, client):
    with pytest.raises(GraphError, match="another host"):
        client.get_json("https://evil.example/v1.0/users")
    assert not emulator.requests.graph_requests()


def test_odd_ids_are_one_path_segment_each(emulator, client):
    body = client.get_json(_url(client, ODD_MEETING))
    assert body["id"] == ODD_MEETING
    (logged,) = emulator.requests.graph_requests()
    last = logged.path.rsplit("/", 1)[1]
    assert unquote(last) == ODD_MEETING


@given(st.text(min_size=1))
def test_quote_segment_round_trips_and_never_splits(value):
    quoted = quote_segment(value)
    assert "/" not in quoted and "#" not in quoted and "?" not in quoted
    assert unquote(quoted) == value


@given(st.text())
def test_odata_string_is_a_single_quoted_literal(value):
    literal = unquote(odata_string(value))
    assert literal.startswith("'") and literal.endswith("'")
    assert literal[1:-1].replace("''", "'") == value


@pytest.mark.parametrize(("header", "expected"), [
    ("2.128", 2.128), ("0", 0.0), ("7", 7.0), ("", None), (None, None), ("soon", None),
    ("-3", 0.0),
])
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header) == expected
