"""Sign-in: msal against the emulator's authority, secret and certificate, reuse and refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from meeting_governance.config import GraphSettings
from meeting_governance.errors import GraphError
from meeting_governance.graph import GraphClient

from .emulator_scenario import MEETING_FULL, ORG_A


def _meeting_url(client: GraphClient) -> str:
    return client.url("users", ORG_A, "onlineMeetings", MEETING_FULL)


def test_token_is_acquired_once_and_reused(emulator, client):
    for _ in range(4):
        assert client.get_json(_meeting_url(client), kind="meeting")["id"] == MEETING_FULL
    assert len(emulator.requests.token_requests()) == 1
    discovery = [r for r in emulator.requests.all() if "openid-configuration" in r.path]
    assert len(discovery) == 1
    assert client.calls["token"] == 1
    assert client.calls["meeting"] == 4


def test_clients_of_one_process_share_one_msal_app_and_token(emulator, make_client):
    """A daemon makes a client per poll: that must not cost a sign-in each time."""
    for _ in range(3):
        fresh = make_client()
        fresh.get_json(_meeting_url(fresh))
        fresh.close()
    assert len(emulator.requests.token_requests()) == 1
    assert len(emulator.requests.openid_requests()) == 1


def test_other_sign_in_settings_get_their_own_msal_app(emulator, make_client):
    make_client().get_json(_meeting_url(make_client()))
    other = make_client(client_secret="", certificate_path=emulator.client_certificate_path,
                        certificate_thumbprint=emulator.client_certificate_thumbprint)
    other.get_json(_meeting_url(other))
    assert len(emulator.requests.token_requests()) == 2
    assert len(emulator.requests.openid_requests()) == 2


def test_a_failed_sign_in_is_not_shared(emulator, make_client):
    wrong = make_client(tenant_id="no-such-tenant")
    with pytest.raises(GraphError):
        wrong.get_json(_meeting_url(wrong))
    right = make_client()
    assert right.get_json(_meeting_url(right))["id"] == MEETING_FULL


def test_certificate_with_thumbprint_signs_in(emulator, make_client):
    client = make_client(client_secret="", certificate_path=emulator.client_certificate_path,
                         certificate_thumbprint=emulator.client_certificate_thumbprint)
    assert client.get_json(_meeting_url(client))["id"] == MEETING_FULL
    assert [r.status for r in emulator.requests.token_requests()] == [200]


def test_certificate_without_thumbprint_uses_the_certificate_in_the_pem(emulator, make_client):
    # msal then sends x5t#S256 and signs with PS256.
    client = make_client(client_secret="", certificate_path=emulator.client_certificate_path)
    assert client.get_json(_meeting_url(client))["id"] == MEETING_FULL


def test_unregistered_certificate_is_refused(emulator, make_client, tmp_path: Path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "other.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
                    + cert.public_bytes(serialization.Encoding.PEM))
    client = make_client(client_secret="", certificate_path=str(pem))
    with pytest.raises(GraphError) as info:
        client.get_json(_meeting_url(client))
    assert info.value.code == "invalid_client"
    assert not info.value.retryable
    assert not emulator.requests.graph_requests()


def test_wrong_secret_is_a_clear_non_retryable_error(emulator, make_client):
    client = make_client(client_secret="wrong-secret-value")
    with pytest.raises(GraphError) as info:
        client.get_json(_meeting_url(client))
    assert info.value.code == "invalid_client"
    assert not info.value.retryable
    assert "wrong-secret-value" not in str(info.value)
    assert "client secret" in str(info.value)
    assert not emulator.requests.graph_requests()


def test_missing_credential_is_reported_before_any_call(emulator):
    with pytest.raises(GraphError, match="no Graph credential"):
        GraphClient.from_settings(GraphSettings(**emulator.client_config(client_secret="")))
    assert len(emulator.requests) == 0


def test_unknown_tenant_is_a_configuration_error(emulator, make_client):
    client = make_client(tenant_id="no-such-tenant")
    with pytest.raises(GraphError, match="tenant_id"):
        client.get_json(_meeting_url(client))


def test_401_mid_run_refreshes_the_token_once(emulator, client):
    client.get_json(_meeting_url(client))
    emulator.faults.set(expire_token_count=1)
    assert client.get_json(_meeting_url(client))["id"] == MEETING_FULL
    assert len(emulator.requests.token_requests()) == 2
    assert [r.status for r in emulator.requests.graph_requests()] == [200, 401, 200]


def test_a_second_401_is_not_retried_forever(emulator, client):
    emulator.faults.set(expire_token_count=5)
    with pytest.raises(GraphError) as info:
        client.get_json(_meeting_url(client))
    assert info.value.status == 401
    assert info.value.code == "InvalidAuthenticationToken"
    assert [r.status for r in emulator.requests.graph_requests()] == [401, 401]
    assert len(emulator.requests.token_requests()) == 2
