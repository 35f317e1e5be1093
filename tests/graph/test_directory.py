"""The directory through Graph `users`: one person, every address — aliases, other mails, a
guest's own address behind `#EXT#` — looked up 20 to a `$batch`, throttling retried, and every
way the directory can fail raised as a GraphError (the gate then waits)."""

from __future__ import annotations

import pytest
import requests

from meeting_governance.errors import GraphError
from meeting_governance.graph.directory import address_filter, lookup
from meeting_governance.identity import external_address

from .emulator_scenario import JANE, LEE, LEE_UPN, SHARED_BY


def test_a_member_by_object_id_brings_every_address(client):
    result = lookup(client, object_ids=[JANE.upper()])
    jane = result.by_id[JANE]
    assert jane is not None and jane.display_name == "Jane Smith" and not jane.is_guest
    # mail and UPN, the smtp: alias, the other mail; not SIP:/X500: entries; all normalised.
    assert jane.addresses == {"jane.smith@contoso.example", "j.smith@contoso.example",
                              "jane@home.example"}


@pytest.mark.parametrize("typed", ["j.smith@contoso.example", "J.SMITH@Contoso.example",
                                   "jane@home.example", "jane.smith@contoso.example"])
def test_any_address_of_a_person_finds_the_same_account(client, typed):
    (user,) = lookup(client, addresses=[typed]).by_address[typed.lower()]
    assert user.object_id == JANE


def test_a_guest_is_found_by_their_own_address_and_by_the_ext_upn(emulator, client):
    by_own = lookup(client, addresses=["lee@northwind.example"]).by_address
    by_upn = lookup(client, addresses=[LEE_UPN]).by_address
    (own,) = by_own["lee@northwind.example"]
    (upn,) = by_upn[LEE_UPN.lower()]
    assert own.object_id == upn.object_id == LEE
    assert own.is_guest and own.guest_domain == "northwind.example"
    assert "lee@northwind.example" in own.addresses  # also derived from the #EXT# UPN
    # The UPN went by path, '#' sent as %23 (a raw '#' would start a URL fragment).
    paths = [r.path for r in emulator.requests.batched_requests()]
    assert any("lee_northwind.example%23ext%23" in p.lower() for p in paths)
    assert not any("#" in p for p in paths)


def test_ext_upn_decoding():
    assert external_address(LEE_UPN) == "lee@northwind.example"
    assert external_address("jo_ann_fabrikam.co.uk#EXT#@t.onmicrosoft.com") == "jo_ann@fabrikam.co.uk"
    assert external_address("jane.smith@contoso.example") is None
    assert external_address("#EXT#@t.onmicrosoft.com") is None


def test_an_address_several_accounts_share_returns_them_all_across_pages(emulator, client):
    users = lookup(client, addresses=["team@contoso.example"]).by_address["team@contoso.example"]
    assert sorted(u.object_id for u in users) == sorted(SHARED_BY)
    # page_size 2: the rest came through the nextLink, with the advanced-query header kept.
    assert [r.path for r in emulator.requests.graph_requests()].count("/v1.0/users") == 1


def test_unknown_ids_and_addresses_are_not_found_not_errors(client):
    result = lookup(client, object_ids=["c0000000-0000-4000-8000-0000000000ff"],
                    addresses=["nobody@contoso.example"])
    assert result.by_id == {"c0000000-0000-4000-8000-0000000000ff": None}
    assert result.by_address == {"nobody@contoso.example": ()}


def test_lookups_go_twenty_to_a_batch(emulator, client):
    ids = [f"e0000000-0000-4000-8000-{n:012d}" for n in range(25)]
    lookup(client, object_ids=ids, addresses=["j.smith@contoso.example"])
    posts = [r for r in emulator.requests.graph_requests() if r.path == "/v1.0/$batch"]
    assert len(posts) == 2
    assert len(emulator.requests.batched_requests()) == 26
    assert client.calls["directory"] == 2


def test_a_throttled_lookup_inside_a_batch_is_retried_after_its_retry_after(emulator, client,
                                                                            sleeps):
    emulator.faults.set(throttle_count=1, throttle_retry_after="2.5", match="/users/")
    result = lookup(client, object_ids=[JANE, LEE])
    assert result.by_id[JANE] and result.by_id[LEE]
    assert sleeps.waits and 2.5 <= sleeps.waits[0] <= 2.75
    statuses = [r.status for r in emulator.requests.batched_requests()]
    assert sorted(statuses) == [200, 200, 429]


def test_throttling_past_the_retry_budget_is_a_retryable_error(emulator, make_client):
    client = make_client(max_retries=2)
    emulator.faults.set(throttle_count=50, match="/users/")
    with pytest.raises(GraphError) as info:
        lookup(client, object_ids=[JANE])
    assert info.value.retryable and "throttling" in str(info.value)


def test_a_missing_permission_names_user_read_all(emulator, client):
    emulator.faults.set(forbidden_count=1, match="/users/")
    with pytest.raises(GraphError) as info:
        lookup(client, object_ids=[JANE])
    assert not info.value.retryable and "User.Read.All" in str(info.value)


def test_an_unreachable_directory_is_a_retryable_error(emulator_session, make_client):
    client = make_client(base_url="https://127.0.0.1:9/v1.0", max_retries=0)
    with pytest.raises(GraphError) as info:
        lookup(client, object_ids=[JANE])
    assert info.value.retryable


def test_the_address_filter_is_an_advanced_query(emulator, client):
    """`or` across lambdas needs ConsistencyLevel: eventual and $count=true: our lookups send
    both, and the emulator refuses the query without them, as Graph does."""
    token = client.token()
    url = f"{client.base_url}/users"
    params = {"$filter": address_filter("j.smith@contoso.example"), "$select": "id"}
    plain = requests.get(url, params=params, headers={"Authorization": f"Bearer {token}"},
                         verify=emulator.ca_bundle, timeout=10)
    assert plain.status_code == 400
    assert plain.json()["error"]["code"] == "Request_UnsupportedQuery"
    advanced = requests.get(url, params={**params, "$count": "true"},
                            headers={"Authorization": f"Bearer {token}",
                                     "ConsistencyLevel": "eventual"},
                            verify=emulator.ca_bundle, timeout=10)
    assert advanced.status_code == 200 and advanced.json()["value"] == [{"id": JANE}]
