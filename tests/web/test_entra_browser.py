"""Entra ID sign-in end to end in a real browser: Debian's Chromium (Playwright) goes from the
app's sign-in page to the Graph emulator's `/authorize` page over HTTPS, signs in there, and
comes back through the callback, where msal redeems the code against the emulator.

Certificates: Chromium does not know the emulator's throwaway CA. Rather than ignoring
certificate errors everywhere (`ignore_https_errors=True`), the browser is told to accept only
the emulator's own server key (`--ignore-certificate-errors-spki-list` with its SPKI hash), so
any other origin still gets full certificate checks. The app itself is served over plain http
on 127.0.0.1 (a registered loopback redirect URI; its cookie is then not `Secure`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meeting_governance.web.sessions import COOKIE_NAME
from mg_emulator import EmulatorKeys, EmulatorServer
from mg_emulator.scenario import (
    SignInUser,
    default_media_dir,
    default_scenario_path,
    load_scenario,
)

from .browser import chromium, new_tab, serve
from .conftest import Web

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COORDINATOR = ("morgan.coordinator@contoso.example", "emulator-coordinator-password")
OUTSIDER = SignInUser(id="e1f2a3b4-0099-4000-8000-000000000099", upn="sam.sales@contoso.example",
                      password="emulator-outsider-password", display_name="Sam Sales",
                      roles=("Sales.Reader",))


@dataclass
class Served:
    url: str
    web: Web
    emulator: EmulatorServer


def _spki_sha256(cert_pem: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in the file."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


@pytest.fixture
def emulator(emulator_keys: EmulatorKeys) -> Iterator[EmulatorServer]:
    demo = load_scenario(default_scenario_path())
    server = EmulatorServer(replace(demo, users=(*demo.users, OUTSIDER)),
                            media_dir=default_media_dir(), keys=emulator_keys)
    with server:
        yield server


@pytest.fixture
def served(make_web: Callable[..., Web], emulator: EmulatorServer) -> Iterator[Served]:
    web = make_web(
        graph={"cloud": "custom", "tenant_id": emulator.tenant_id,
               "authority_host": emulator.authority_host, "base_url": emulator.base_url,
               "ca_bundle": emulator.ca_bundle},
        web={"entra_enabled": True, "entra_client_id": emulator.client_id,
             "entra_client_secret": emulator.client_secret})
    with serve(web.app) as url:
        yield Served(url, web, emulator)


@pytest.fixture
def browser(served: Served) -> Iterator[Any]:
    # Trust the emulator's server key alone (its throwaway CA is not in the browser's store).
    trust = _spki_sha256(served.emulator.tls.server_cert)
    with chromium((f"--ignore-certificate-errors-spki-list={trust}",)) as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with new_tab(browser) as tab:
        yield tab


def _to_emulator_page(page: Any, served: Served, errors: list[str]) -> None:
    def console(message: Any) -> None:
        # The app serves no /favicon.ico; Chromium asks for one once per origin (not a fault).
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location['url']})")

    page.on("console", console)
    page.goto(f"{served.url}/optouts")
    assert "/login?next=" in page.url
    page.get_by_role("link", name="Sign in with Microsoft Entra ID").click()
    emu = served.emulator
    page.wait_for_url(f"{emu.authority_host}/{emu.tenant_id}/oauth2/v2.0/authorize?*")
    assert page.get_by_role("heading", name="Sign in").is_visible()


def test_coordinator_signs_in_with_entra_and_out_again(page: Any, served: Served,
                                                       tmp_path: Path) -> None:
    errors: list[str] = []
    _to_emulator_page(page, served, errors)
    page.get_by_label("Email or user name").fill(COORDINATOR[0])
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    assert "Your account or password is incorrect." in page.get_by_role("alert").inner_text()
    assert page.url.startswith(served.emulator.authority_host)  # still on the authority's page
    page.get_by_label("Password").fill(COORDINATOR[1])
    page.screenshot(path=str(tmp_path / "emulator-sign-in.png"))
    page.get_by_role("button", name="Sign in").click()

    # Back through /login/entra/callback (msal redeems the code) to where the user started.
    page.wait_for_url(f"{served.url}/optouts")
    assert page.get_by_role("heading", name="Opt-outs").is_visible()
    who = page.locator(".who").inner_text()
    assert "Morgan Coordinator" in who and "(coordinator)" in who
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE_NAME)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.screenshot(path=str(tmp_path / "signed-in.png"), full_page=True)
    # The coordinator can use the app: the add form is open to them, the admin pages are not.
    page.get_by_role("link", name="Add an opt-out").first.click()
    page.wait_for_url(f"{served.url}/optouts/new")
    assert page.get_by_role("link", name="Users").count() == 0

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{served.url}/login?signed_out=1")
    page.goto(f"{served.url}/optouts")
    assert "/login?next=" in page.url
    assert errors == []  # no CSP violations or broken resources on either origin
    # The browser met the authority twice (page, form post); the app redeemed the code once.
    log = served.emulator.requests.all()
    assert [(r.method, r.status) for r in log if r.path.endswith("/login")] == [
        ("POST", 200), ("POST", 302)]
    assert [(r.method, r.status) for r in served.emulator.requests.token_requests()] == [
        ("POST", 200)]


def test_a_user_without_a_mapped_role_is_refused(page: Any, served: Served) -> None:
    errors: list[str] = []
    _to_emulator_page(page, served, errors)
    page.get_by_label("Email or user name").fill(OUTSIDER.upn)
    page.get_by_label("Password").fill(OUTSIDER.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served.url}/login/entra/callback?*")
    alert = page.get_by_role("alert").inner_text()
    assert "Your account has no role in this application." in alert
    assert "Ask an administrator for access." in alert
    assert page.locator(".who").count() == 0  # nobody is signed in
    page.goto(f"{served.url}/optouts")
    assert "/login?next=" in page.url


def test_cancel_on_the_authority_page_comes_back_refused(page: Any, served: Served) -> None:
    errors: list[str] = []
    _to_emulator_page(page, served, errors)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(f"{served.url}/login/entra/callback?*error=access_denied*")
    assert "did not succeed" in page.get_by_role("alert").inner_text()
    page.goto(f"{served.url}/optouts")
    assert "/login?next=" in page.url
