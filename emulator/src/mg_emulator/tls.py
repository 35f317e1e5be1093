"""The emulator's keys: a throwaway CA from `trustme`, so msal sees a real `https` authority,
and the key that signs its id_tokens.

Files land in a directory: `ca.pem` (what a client trusts), `server.pem`/`server-key.pem` (the
listener), `client.pem` (private key plus certificate of the app, for the certificate
credential). The CA's own private key never touches the disk. `ensure_tls_files` reuses the
files while they are valid (the `meeting-governance emulator` command, run after run);
`make_keys` issues a fresh set that many emulators share (one per test session).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

_VALIDITY = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_bundle: Path
    server_cert: Path
    server_key: Path
    client_pem: Path  # private key + certificate of the emulated app registration

    @property
    def client_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.client_pem.read_bytes())

    @property
    def client_thumbprint_sha1(self) -> str:
        """The SHA-1 thumbprint as Entra shows it (hex), for `graph.certificate_thumbprint`."""
        return self.client_certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303


@dataclass(frozen=True, slots=True)
class EmulatorKeys:
    """Certificates and the id_token signing key, made once and handed to every emulator that
    may share them (RSA key generation is the slow part of starting one)."""

    tls: TlsFiles
    signing_key: rsa.RSAPrivateKey


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _still_valid(path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=1)


def _files(directory: Path) -> TlsFiles:
    return TlsFiles(directory / "ca.pem", directory / "server.pem",
                    directory / "server-key.pem", directory / "client.pem")


def issue_tls_files(directory: Path) -> TlsFiles:
    """A new CA and the server and client certificates it issues, written under `directory`."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = _files(directory)
    not_after = datetime.now(UTC) + _VALIDITY
    ca = trustme.CA(organization_name="Meeting Governance emulator (throwaway)")
    server = ca.issue_cert("localhost", "127.0.0.1", "::1", not_after=not_after)
    # Client assertions are RS256/PS256, so the app's key must be RSA.
    client = ca.issue_cert("emulator-app.invalid", common_name="meeting-governance emulator app",
                           not_after=not_after, key_type=trustme.KeyType.RSA)
    ca.cert_pem.write_to_path(str(files.ca_bundle))
    (files.server_cert).write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    _write_private(files.server_key, server.private_key_pem.bytes())
    _write_private(files.client_pem, client.private_key_pem.bytes()
                   + client.cert_chain_pems[0].bytes())
    return files


def ensure_tls_files(state_dir: Path) -> TlsFiles:
    """Reuse the CA, server and client certificates under `state_dir`, or issue new ones."""
    files = _files(state_dir)
    if all(p.is_file() for p in (files.server_key, files.client_pem)) and all(
        _still_valid(p) for p in (files.ca_bundle, files.server_cert, files.client_pem)
    ):
        return files
    return issue_tls_files(state_dir)


def new_signing_key() -> rsa.RSAPrivateKey:
    """The key the sign-in authority signs id_tokens with (RS256, as Entra ID)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_keys(directory: Path) -> EmulatorKeys:
    """A fresh CA, certificates and signing key, for emulators that share them."""
    return EmulatorKeys(issue_tls_files(directory), new_signing_key())
