"""The emulator itself: scenario files, its TLS, its blocking runner, its request log."""

from __future__ import annotations

import dataclasses
import json
import socket
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from cryptography import x509

from meeting_governance.config import GraphSettings
from meeting_governance.graph import (
    GraphClient,
    discover,
    download_recording,
    group_organizers,
    resolve_participants,
)
from mg_emulator import (
    EmulatorServer,
    ScenarioError,
    default_media_dir,
    default_scenario_path,
    load_scenario,
    run_emulator,
    scenario_from_dict,
)
from mg_emulator.tls import ensure_tls_files

DEMO = default_scenario_path("demo")


def test_demo_scenario_loads():
    scenario = load_scenario(DEMO)
    assert len(scenario.organizers) == 2
    assert len(scenario.meetings) == 8 and len(scenario.recordings) == 8
    assert {r.meeting for r in scenario.recordings} == {m.id for m in scenario.meetings}
    assert any(not m.attendance_reports for m in scenario.meetings)
    # The directory shows the hard cases: an alias, a B2B guest; organisers are in it too.
    directory = scenario.directory()
    assert any(any(a.startswith("smtp:") for a in p.proxy_addresses) for p in directory)
    assert any(p.user_type == "Guest" and "#EXT#" in p.upn for p in directory)
    assert {o.id for o in scenario.organizers} <= {p.id for p in directory}


@pytest.mark.parametrize(("data", "problem"), [
    ({"organizers": [{"id": "o", "colour": "red"}]}, "unknown key"),
    ({"meetings": [{"id": "m", "organizer": "nobody"}]}, "organizer that is not listed"),
    ({"organizers": [{"id": "o"}], "meetings": [{"id": "m", "organizer": "o",
                                                 "start": "yesterday"}]}, "ISO 8601"),
    ({"recordings": [{"id": "r", "meeting": "none", "media": "x"}]}, "meeting that is not"),
    ({"page_size": 0}, "page_size"),
])
def test_bad_scenarios_name_the_problem(data, problem):
    with pytest.raises(ScenarioError, match=problem):
        scenario_from_dict(data)


def test_missing_scenario_file(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.toml")


def test_tls_material_is_private_and_trusted(emulator):
    state = Path(emulator.ca_bundle).parent
    assert stat.S_IMODE((state / "server-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(emulator.client_certificate_path).stat().st_mode) == 0o600
    url = f"{emulator.authority_host}/{emulator.tenant_id}/v2.0/.well-known/openid-configuration"
    with requests.Session() as session:
        session.trust_env = False
        assert session.get(url, verify=emulator.ca_bundle, timeout=5).json()["token_endpoint"]
        with pytest.raises(requests.exceptions.SSLError):
            session.get(url, verify=True, timeout=5)  # the system store does not know our CA


def test_one_set_of_keys_serves_many_emulators(emulator_keys, media_dir):
    """The session's CA, certificates and signing key, shared by two emulators at once: both
    are trusted through the one CA bundle and publish the same id_token key."""
    with EmulatorServer(load_scenario(DEMO), media_dir=media_dir, keys=emulator_keys) as one, \
            EmulatorServer(load_scenario(DEMO), media_dir=media_dir, keys=emulator_keys) as two:
        assert one.port != two.port
        assert one.ca_bundle == two.ca_bundle == str(emulator_keys.tls.ca_bundle)
        kids = set()
        with requests.Session() as session:
            session.trust_env = False
            for emu in (one, two):
                url = f"{emu.authority_host}/{emu.tenant_id}/discovery/v2.0/keys"
                kids |= {k["kid"] for k in session.get(url, verify=emu.ca_bundle,
                                                         timeout=5).json()["keys"]}
        assert kids == {one.signin.kid}
    # The CA's private key is never written: only its certificate is there to trust.
    directory = emulator_keys.tls.ca_bundle.parent
    assert b"PRIVATE KEY" not in emulator_keys.tls.ca_bundle.read_bytes()
    assert sorted(p.name for p in directory.iterdir()) == [
        "ca.pem", "client.pem", "server-key.pem", "server.pem"]
    ca = x509.load_pem_x509_certificate(emulator_keys.tls.ca_bundle.read_bytes())
    server = x509.load_pem_x509_certificate(emulator_keys.tls.server_cert.read_bytes())
    assert server.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_state_dir_keeps_its_certificates_until_they_are_unusable(tmp_path):
    """`meeting-governance emulator`, run after run: a client configured with the CA bundle
    keeps working; a damaged or missing file gets a whole new set."""
    first = ensure_tls_files(tmp_path / "state")
    ca_bytes = first.ca_bundle.read_bytes()
    again = ensure_tls_files(tmp_path / "state")
    assert again == first and again.ca_bundle.read_bytes() == ca_bytes
    assert stat.S_IMODE(first.server_key.stat().st_mode) == 0o600
    first.server_cert.write_text("not a certificate")
    renewed = ensure_tls_files(tmp_path / "state")
    assert renewed.ca_bundle.read_bytes() != ca_bytes
    x509.load_pem_x509_certificate(renewed.server_cert.read_bytes())


def test_an_emulator_needs_a_state_dir_or_keys(media_dir):
    with pytest.raises(ValueError, match=r"state_dir .* or keys"):
        EmulatorServer(load_scenario(DEMO), media_dir=media_dir)


def test_graph_refuses_requests_without_a_token(emulator):
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(f"{emulator.base_url}/users/x/onlineMeetings/y",
                               verify=emulator.ca_bundle, timeout=5)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert error["innerError"]["request-id"]


def test_request_log_has_no_bodies_or_headers(emulator, client):
    client.get_json(client.url("users", "11111111-1111-4111-8111-111111111111", "onlineMeetings",
                               "MSo-full=="))
    for entry in emulator.requests:
        assert {f.name for f in dataclasses.fields(entry)} == {
            "method", "path", "query", "time", "status", "in_batch"}
        assert "test-secret" not in entry.path + entry.query


def test_run_emulator_serves_the_demo_until_stopped(tmp_path, media_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready, stop = threading.Event(), threading.Event()
    state = tmp_path / "state"
    worker = threading.Thread(target=run_emulator, args=(port, DEMO, media_dir, state),
                              kwargs={"ready": ready, "stop": stop}, daemon=True)
    worker.start()
    try:
        assert ready.wait(30)
        scenario = load_scenario(DEMO)
        settings = GraphSettings(
            cloud="custom", tenant_id=scenario.tenant_id, client_id=scenario.client_id,
            client_secret=scenario.client_secret, authority_host=f"https://127.0.0.1:{port}",
            base_url=f"https://127.0.0.1:{port}/v1.0", ca_bundle=str(state / "ca.pem"))
        with GraphClient.from_settings(settings) as client:
            organizer = scenario.organizers[0].id
            found = discover(client, organizer, delta_link=None,
                             start=datetime(2026, 1, 1, tzinfo=UTC))
            assert len(found.recordings) == 5
            info = resolve_participants(client, organizer, found.recordings[0].meeting_id)
            assert info.complete
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()


def test_demo_end_to_end_with_the_shipped_media(tmp_path, emulator_keys):
    """The demo scenario over the packaged clips: what `meeting-governance demo` relies on."""
    manifest = json.loads((default_media_dir() / "manifest.json").read_text())
    expected = {entry["file"]: entry["sha256"] for entry in manifest}
    scenario = load_scenario(DEMO)
    media_of = {r.id: r.media for r in scenario.recordings}
    window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    with EmulatorServer(scenario, media_dir=default_media_dir(), keys=emulator_keys) as emu, \
            GraphClient.from_settings(GraphSettings(**emu.client_config())) as client:
        organizers = group_organizers(client, scenario.groups[0].id)
        assert set(organizers) == {o.id for o in scenario.organizers}
        complete = 0
        for organizer in organizers:
            found = discover(client, organizer, delta_link=None, start=window[0])
            for ref in found.recordings:
                complete += resolve_participants(client, organizer, ref.meeting_id,
                                                 window=(ref.created, ref.end)).complete
                result = download_recording(
                    client, organizer, ref.meeting_id, ref.recording_id, tmp_path / "staging",
                    max_bytes=10**7, allowed_content_types=["audio/mp4", "video/mp4"])
                assert result.sha256 == expected[media_of[ref.recording_id]]
        # weekly sync, retro, vendor demo, all hands; the gate decides the rest (the stand-up
        # recording has no report of its own occurrence)
        assert complete == 4
