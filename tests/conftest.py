"""Shared fixtures: real SQLite files and a real PostgreSQL, a fresh schema per test.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth, database `test`); override with
MG_TEST_POSTGRES_URL. Each test gets its own schema (dropped afterwards), so parallel runs and
sessions never collide. When PostgreSQL is not reachable the PostgreSQL variants are skipped
locally but fail under CI=true, where the server must be there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from hypothesis import settings as hypothesis_settings

from meeting_governance.config import Settings, load_settings
from meeting_governance.context import AppContext, initialise
from mg_emulator import EmulatorKeys, make_keys

POSTGRES_URL = os.environ.get("MG_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# Property tests judge correctness, not speed: on a loaded 2-core machine an example may take
# longer than hypothesis' default 200 ms deadline, which would fail a correct test.
hypothesis_settings.register_profile("meeting-governance", deadline=None)
hypothesis_settings.load_profile("meeting-governance")

# Never let a developer's own MG_* variables leak into a test.
for _name in list(os.environ):
    if _name.startswith("MG_"):
        del os.environ[_name]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _postgres_available() -> bool:
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


_PG_OK: bool | None = None


def postgres_ok() -> bool:
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = _postgres_available()
    return _PG_OK


@pytest.fixture(scope="session")
def emulator_keys(tmp_path_factory: pytest.TempPathFactory) -> EmulatorKeys:
    """One throwaway CA (trustme), one server and app certificate and one id_token signing key
    for every Graph emulator of the session: key generation, not serving, is what costs."""
    return make_keys(tmp_path_factory.mktemp("emulator-keys"))


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a brand-new schema, dropped afterwards."""
    if not postgres_ok():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL is not reachable")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # pre-ping: a test may restart the server, and the teardown must still drop the schema
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(autouse=True)
def _fresh_sign_in() -> Iterator[None]:
    """Each test starts as a new process would: no msal application shared from another test
    (the client keeps one per process and sign-in settings)."""
    from meeting_governance.graph.client import forget_sign_ins

    forget_sign_ins()
    yield
    forget_sign_ins()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database test runs on both engines."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'meeting-governance.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


SOFTHSM_LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
HSM_PIN = "2718"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SoftHSM2 token of our own (its own token directory and config), for the whole run.

    A PKCS#11 library reads its configuration once per process, so one token serves every test;
    each test's epoch keys have unique ids. Returns the token label (the PIN is HSM_PIN)."""
    if not (os.path.isfile(SOFTHSM_LIBRARY) and shutil.which("softhsm2-util")):
        if os.environ.get("CI"):
            pytest.fail("SoftHSM2 is missing: scripts/test installs the Debian package softhsm2")
        pytest.skip("SoftHSM2 is not installed (Debian package softhsm2)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label = "mg-test"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", HSM_PIN,
                    "--so-pin", "31415"], check=True, capture_output=True)
    return label


def keyring_settings(kind: str, token_label: str = "") -> dict[str, object]:
    """The `[keys]` table for a keyring kind ("file" or "pkcs11")."""
    if kind == "pkcs11":
        return {"provider": "pkcs11", "pkcs11_library": SOFTHSM_LIBRARY,
                "pkcs11_token_label": token_label}
    return {"provider": "file"}


@pytest.fixture(params=["file", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def keyring_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Both keyrings: the file (embedded default) and an HSM through PKCS#11 (SoftHSM2)."""
    if request.param == "pkcs11":
        label = request.getfixturevalue("softhsm")
        monkeypatch.setenv("MG_PKCS11_PIN", HSM_PIN)
        return keyring_settings("pkcs11", label)
    return keyring_settings("file")


def make_settings(home: Path, db_url: str | None = None, **overrides: object) -> Settings:
    data: dict[str, object] = {"home": home}
    if db_url:
        data["database"] = {"url": db_url}
    for key, value in overrides.items():
        data[key] = value
    return load_settings(None, **data)


@pytest.fixture
def settings(home: Path, db_url: str) -> Settings:
    return make_settings(home, db_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[AppContext]:
    """An initialised installation (config, keyring, migrated database) on either engine."""
    initialise(settings, settings.home / "config.toml")
    ctx = AppContext.open(settings)
    ctx.actor = "test"
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def sqlite_app(home: Path) -> Iterator[AppContext]:
    """The embedded default only (for tests that scan the SQLite file)."""
    settings = make_settings(home)
    initialise(settings, settings.home / "config.toml")
    ctx = AppContext.open(settings)
    ctx.actor = "test"
    try:
        yield ctx
    finally:
        ctx.close()


def scan_for(root: Path, needles: list[bytes]) -> list[tuple[Path, bytes]]:
    """Every (file, needle) pair where a known plaintext shows up under `root`."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                if needle in data or needle.lower() in data.lower():
                    hits.append((path, needle))
    return hits
