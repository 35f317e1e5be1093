"""Shared fixtures: real SQLite files and a real PostgreSQL, a fresh schema per test.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth, database `test`); override with
MG_TEST_POSTGRES_URL. Each test gets its own schema (dropped afterwards), so parallel runs and
sessions never collide. When PostgreSQL is not reachable the PostgreSQL variants are skipped
locally but fail under CI=true, where the server must be there.

Two lanes (`scripts/test --fast` and `scripts/test`): a test is put in the full lane only by
the markers below, and the heavy fixtures mark their users themselves
(`pytest_collection_modifyitems`), so a new test that loads the model or needs PostgreSQL can
not end up in the fast lane by mistake. The full lane runs every test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import settings as hypothesis_settings

from meeting_governance import audit
from meeting_governance.config import Settings, TranscriptionSettings, load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import make_engine, migrate, session_scope
from meeting_governance.transcribe import Transcriber
from mg_emulator import EmulatorKeys, make_keys
from tests.fake_transcriber import FakeTranscriber

POSTGRES_URL = os.environ.get("MG_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# Property tests judge correctness, not speed: on a loaded 2-core machine an example may take
# longer than hypothesis' default 200 ms deadline, which would fail a correct test.
hypothesis_settings.register_profile("meeting-governance", deadline=None)
hypothesis_settings.load_profile("meeting-governance")
# The fast lane (`scripts/test --fast` passes --hypothesis-profile) tries a quarter of the
# examples; the full lane keeps hypothesis' 100.
hypothesis_settings.register_profile("meeting-governance-fast", deadline=None, max_examples=25)

# Never let a developer's own MG_* variables leak into a test.
for _name in list(os.environ):
    if _name.startswith("MG_"):
        del os.environ[_name]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests read the CLI's output as a pipe gets it (tables as wide as they need). pytest-xdist's
# workers run with COLUMNS=80, which would wrap them; so would a developer's terminal width.
# (meeting_governance.cliutil reads it when first imported, after this.)
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


# Requesting one of these fixtures (directly or through another fixture) puts a test in the
# full lane: the marker is added at collection. `db_url` and `keyring_kind` mark their
# PostgreSQL and PKCS#11 variants through their params.
FIXTURE_MARKERS = {"whisper_model": "model", "pg_schema_url": "postgres", "softhsm": "pkcs11"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in used:
                item.add_marker(marker)


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
def pg_schema_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a brand-new schema, dropped afterwards."""
    if request.node.get_closest_marker("postgres") is None:
        # Reached through request.getfixturevalue: collection could not see it, so the fast
        # lane would run it. Say how to fix the test rather than run PostgreSQL unmarked.
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL but is not marked `postgres`: "
                    "mark it (or its parameter) with pytest.mark.postgres")
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


@pytest.fixture(scope="session")
def whisper_model() -> Any:
    """The real tiny.en model, loaded once per session (per worker under xdist): the one
    fixture that loads it. Every test that transcribes for real asks for it, and is marked
    `model` for that (the full lane)."""
    return Transcriber(TranscriptionSettings()).model


@pytest.fixture
def fake_transcriber() -> FakeTranscriber:
    """For tests that need something transcribed, not the words (see tests/fake_transcriber)."""
    return FakeTranscriber()


class DatabaseTemplate:
    """An empty database migrated to head once per session (per xdist worker), copied into
    each installation a fixture sets up instead of running every migration again.

    SQLite: a migrated file, copied. PostgreSQL: a schema migrated once and dumped with
    `pg_dump` (tables, sequences, the rows the migrations insert), replayed into the test's
    own empty schema — tests keep one schema each (advisory locks and the lock tests are per
    schema), and `CREATE DATABASE … TEMPLATE` per test would cost a `DROP DATABASE` each, which
    forces a checkpoint of the whole shared server (measured 0.2-25 s here). Without `pg_dump`
    the PostgreSQL installations migrate as before.

    Only for fixtures that set up an installation to test something else: tests of `init`
    and of the migrations themselves start from nothing. `apply` also writes the
    `system.init` audit entry that `initialise` writes when it migrates, so the installation
    is the one `init` makes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sqlite: Path | None = None
        self._postgres: str | None = None
        self._postgres_tried = False
        self.revisions: list[str] = []  # what migrating an empty database applies

    def sqlite_file(self) -> Path:
        if self._sqlite is None:
            path = self.root / "template.db"
            engine = make_engine(f"sqlite:///{path}")
            try:
                self.revisions = migrate(engine)
            finally:
                engine.dispose()  # the last connection closing folds the WAL into the file
            wal = path.with_name(path.name + "-wal")
            assert not wal.exists() or wal.stat().st_size == 0, "template WAL not folded in"
            self._sqlite = path
        return self._sqlite

    def postgres_script(self) -> str | None:
        """The migrated schema as SQL, its name replaced by `{schema}`; None without pg_dump."""
        if not self._postgres_tried:
            self._postgres_tried = True
            dumped = _dump_migrated_schema()
            if dumped is not None:
                self._postgres, self.revisions = dumped
        return self._postgres

    def apply(self, settings: Settings) -> None:
        """Fill the installation's database from the template, if it is empty."""
        url = settings.database_url
        if url.startswith("sqlite:///"):
            target = Path(url.split("///", 1)[1])
            if target.exists():
                return
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(self.sqlite_file(), target)
            target.chmod(0o600)
        elif url.startswith("postgresql"):
            schema = _search_path(url)
            script = self.postgres_script() if schema else None
            if not (schema and script and _replay(url, schema, script)):
                return
        else:
            return
        engine = make_engine(url)
        try:
            with session_scope(engine) as session:  # as `initialise` does after migrating
                audit.append(session, actor=f"cli:{os.environ.get('USER', 'unknown')}",
                             action="system.init", target_type="database",
                             details={"migrations": ",".join(self.revisions)})
        finally:
            engine.dispose()


def _search_path(url: str) -> str | None:
    """The schema a test URL (`pg_schema_url`) puts first on the search path."""
    options = sqlalchemy.engine.make_url(url).query.get("options", "")
    found = re.search(r"search_path=([A-Za-z0-9_]+)", str(options))
    return found.group(1) if found else None


def _dump_migrated_schema() -> tuple[str, list[str]] | None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None or not postgres_ok():
        return None
    template = f"mgtpl_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{template}"'))
        engine = make_engine(f"{POSTGRES_URL}?options=-csearch_path%3D{template}")
        try:
            revisions = migrate(engine)
        finally:
            engine.dispose()
        server = sqlalchemy.engine.make_url(POSTGRES_URL)
        dumped = subprocess.run(
            [pg_dump, "--schema", template, "--inserts", "--no-owner", "--no-privileges",
             "--dbname", server.set(drivername="postgresql").render_as_string(
                 hide_password=False)],
            capture_output=True, text=True, check=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{template}" CASCADE'))
        admin.dispose()
    if dumped.returncode != 0:
        return None  # e.g. a pg_dump older than the server: migrate each installation instead
    kept = []
    for line in dumped.stdout.splitlines():
        if line.startswith(("--", "\\")) or line.startswith(f"CREATE SCHEMA {template};"):
            continue
        kept.append(line)
    script = "\n".join(kept)
    script = script.replace(f"{template}.", "{schema}.")
    return None if template in script else (script, revisions)


def _replay(url: str, schema: str, script: str) -> bool:
    """Run the dump in the test's own schema, in one transaction, if it is empty."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = :schema"),
                {"schema": schema}).scalar_one()
        if tables:
            return False
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.execute(script.replace("{schema}.", f'"{schema}".'))
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
    return True


@pytest.fixture(scope="session")
def db_template(tmp_path_factory: pytest.TempPathFactory) -> DatabaseTemplate:
    """The migrated template (built on first use, per engine)."""
    return DatabaseTemplate(tmp_path_factory.mktemp("db-template"))


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
def app(settings: Settings, db_template: DatabaseTemplate) -> Iterator[AppContext]:
    """An initialised installation (config, keyring, migrated database) on either engine."""
    db_template.apply(settings)
    initialise(settings, settings.home / "config.toml")
    ctx = AppContext.open(settings)
    ctx.actor = "test"
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def sqlite_app(home: Path, db_template: DatabaseTemplate) -> Iterator[AppContext]:
    """The embedded default only (for tests that scan the SQLite file)."""
    settings = make_settings(home)
    db_template.apply(settings)
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
