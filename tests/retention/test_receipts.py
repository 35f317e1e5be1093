"""Receipts that prove what they say, to someone who trusts only the installation's public key.

A receipt names the epoch keys the purge destroyed and the audit checkpoint it took; a third
party verifies it with OpenSSL alone; `purge verify-receipt` refuses an unverified signer and,
with the keyring, checks that every key the receipt names is really gone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meeting_governance import receipts
from meeting_governance.context import AppContext
from meeting_governance.purge import purge

from .helpers import make_transcript
from .test_lock import cli_env


def cli(app: AppContext, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meeting_governance", *args], env=cli_env(app),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def receipt(sqlite_app: AppContext) -> Path:
    app = sqlite_app
    for i in range(2):
        make_transcript(app, meeting_id=f"m{i}", retain_until=app.clock.now() - timedelta(hours=1))
    report = purge(app, as_of=app.clock.now())
    assert report.receipt_path is not None and report.keys_destroyed
    return report.receipt_path


def test_receipt_names_destroyed_keys_and_the_checkpoint(sqlite_app: AppContext,
                                                         receipt: Path) -> None:
    doc = json.loads(receipt.read_bytes())
    destroyed = doc["keys_destroyed"]
    assert destroyed and all(len(k["fingerprint"]) == 32 for k in destroyed)
    assert {k["epoch"].split(":")[0] for k in destroyed} <= {"retention", "metadata"}
    point = doc["audit_checkpoint"]["checkpoint"]
    assert point["head_seq"] == doc["audit"]["head_seq"] and point["head_hash"] == doc["audit"]["head_hash"]
    assert doc["compaction"] == "complete"
    for key in destroyed:
        assert not sqlite_app.keys.exists(key["key_id"])


def test_openssl_alone_verifies_a_receipt(sqlite_app: AppContext, receipt: Path,
                                          tmp_path: Path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    pem = tmp_path / "receipt-key.pem"
    exported = cli(sqlite_app, "keys", "export-public", "--out", str(pem))
    assert exported.returncode == 0, exported.stderr
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin",
               "-in", str(receipt), "-sigfile", str(receipt) + ".sig"]
    ok = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stderr
    forged = tmp_path / "forged.json"
    forged.write_bytes(receipt.read_bytes().replace(b'"purged":2', b'"purged":3'))
    bad = subprocess.run([*command[:7], str(forged), "-sigfile", str(receipt) + ".sig"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode != 0


@pytest.mark.slow
def test_verify_receipt_cli(sqlite_app: AppContext, receipt: Path, tmp_path: Path) -> None:
    ok = cli(sqlite_app, "purge", "verify-receipt", str(receipt))
    assert ok.returncode == 0, ok.stderr
    assert "epoch keys destroyed (confirmed absent from the keyring)" in " ".join(ok.stdout.split())
    # Elsewhere, without the keyring: only the exported public key makes it trustworthy.
    pem = tmp_path / "key.pem"
    pem.write_bytes(receipts.public_key_pem(sqlite_app.keys.signing_key()))
    stranger = {"MG_HOME": str(tmp_path / "elsewhere")}
    alone = subprocess.run([sys.executable, "-m", "meeting_governance", "purge", "verify-receipt",
                            str(receipt)], env={**cli_env(sqlite_app), **stranger},
                           capture_output=True, text=True, timeout=120)
    assert alone.returncode == 1 and "signer is unverified" in alone.stderr
    trusted = subprocess.run([sys.executable, "-m", "meeting_governance", "purge",
                              "verify-receipt", str(receipt), "--public-key", str(pem)],
                             env={**cli_env(sqlite_app), **stranger}, capture_output=True,
                             text=True, timeout=120)
    assert trusted.returncode == 0, trusted.stderr


def test_receipt_re_signed_with_another_key_is_refused(sqlite_app: AppContext, receipt: Path,
                                                       tmp_path: Path) -> None:
    doc = json.loads(receipt.read_bytes())
    for name in ("format", "public_key", "public_key_sha256"):
        doc.pop(name)
    doc["tombstone_ids"] = doc["tombstone_ids"][:1]  # the forger hides a purge
    forged = tmp_path / "purge-forged.json"
    data, signature = receipts.sign(doc, Ed25519PrivateKey.generate())
    forged.write_bytes(data)
    forged.with_name(forged.name + ".sig").write_bytes(signature)
    assert receipts.verify_receipt(forged).problem.startswith("the signer is unverified")
    run = cli(sqlite_app, "purge", "verify-receipt", str(forged))
    assert run.returncode == 1 and "signed by another key" in run.stderr


def test_a_key_named_destroyed_but_present_fails(sqlite_app: AppContext, receipt: Path,
                                                 tmp_path: Path) -> None:
    app = sqlite_app
    from meeting_governance.keys import new_key_id

    alive = new_key_id()
    app.keys.create(alive)
    doc = json.loads(receipt.read_bytes())
    for name in ("format", "public_key", "public_key_sha256"):
        doc.pop(name)
    doc["keys_destroyed"].append({"key_id": alive, "epoch": "retention:x", "fingerprint": "",
                                  "reason": "purge"})
    lying = tmp_path / "purge-lying.json"
    data, signature = receipts.sign(doc, app.keys.signing_key())
    lying.write_bytes(data)
    lying.with_name(lying.name + ".sig").write_bytes(signature)
    run = cli(app, "purge", "verify-receipt", str(lying))
    assert run.returncode == 1 and "still in the keyring file" in run.stderr and alive in run.stderr
