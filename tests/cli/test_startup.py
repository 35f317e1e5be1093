"""The CLI starts light: `--help` and the web app load no numpy, PyAV or faster-whisper, and a
command that fails on an empty MG_HOME leaves nothing behind (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("numpy", "av", "faster_whisper", "onnxruntime", "ctranslate2")
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env.update(MG_HOME=str(home), HF_HUB_OFFLINE="1",
               PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meeting_governance", *args],
                          env=_child_env(home, **extra), capture_output=True, text=True,
                          timeout=180, check=False)


def python(home: Path, code: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter with this checkout's package and `home` as MG_HOME."""
    return subprocess.run([sys.executable, "-c", code], env=_child_env(home),
                          capture_output=True, text=True, timeout=120, check=check)


@pytest.mark.parametrize("module", [
    "meeting_governance.cli", "meeting_governance.web.app", "meeting_governance.formats",
    "meeting_governance.segments", "meeting_governance.diarization",
    "meeting_governance.device", "meeting_governance.decoding", "meeting_governance.preflight",
])
def test_importing_loads_nothing_heavy(module: str, tmp_path: Path) -> None:
    code = (f"import sys, {module}\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = python(tmp_path, code)
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()}"


def test_help_runs_without_the_core(tmp_path: Path) -> None:
    """`--help` needs typer and rich only: not the database, the keys or the model."""
    code = ("import sys\nfrom meeting_governance.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', ','.join(m for m in ('sqlalchemy', 'alembic', 'numpy', 'av', "
            "'cryptography.hazmat.primitives.ciphers.aead', 'pydantic') "
            "if m in sys.modules))")
    done = python(tmp_path, code)
    assert "retention" in done.stdout and "process" in done.stdout
    assert done.stdout.strip().endswith("LOADED"), done.stdout[-300:]


def test_segment_records_are_the_same_everywhere() -> None:
    from meeting_governance import formats, segments, transcribe

    assert transcribe.Segment is segments.Segment is formats.Segment
    assert transcribe.TranscriptResult is segments.TranscriptResult


def test_a_failed_command_on_an_empty_home_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    done = cli(home, "optout", "revoke", "abcd1234", "--reason", "x")
    assert done.returncode != 0
    assert "meeting-governance init" in done.stderr
    assert not home.exists()
    assert list(tmp_path.iterdir()) == []


def test_init_makes_a_private_home_and_the_help_names_the_right_commands(tmp_path: Path) -> None:
    home = tmp_path / "deep" / "home"
    assert cli(home, "init").returncode == 0
    assert (home.stat().st_mode & 0o777) == 0o700
    helped = cli(home, "retention", "--help", COLUMNS="200")
    assert "retention policies" in helped.stdout and "retention list" not in helped.stdout
    assert "apply" in helped.stdout and "policies" in helped.stdout


def test_a_bad_environment_variable_is_named_not_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "init").returncode == 0
    done = cli(home, "recordings", "list", MG_GATE__RETRY_INTERVAL_MINUTES="soon")
    assert done.returncode == 2
    assert "environment variable MG_GATE__RETRY_INTERVAL_MINUTES" in done.stderr
    assert "soon" not in done.stderr  # values are not echoed (they may be secrets)
    assert "config.toml" not in done.stderr
    (home / "config.toml").write_text('[gate]\nretry_interval_minutes = "soon"\n')
    from_file = cli(home, "recordings", "list")
    assert from_file.returncode == 2
    assert f"gate.retry_interval_minutes in {home / 'config.toml'}" in from_file.stderr


def test_the_migration_head_is_read_without_alembic_as_alembic_reads_it() -> None:
    """`migrate` skips Alembic when the database is at the scripts' head: both must agree."""
    from meeting_governance.db import head_revision, scripted_heads

    assert scripted_heads() == {head_revision()}


def test_a_lazy_module_behaves_as_an_imported_one(tmp_path: Path) -> None:
    """Loaded on first use, and the same module every way the import system reaches it."""
    code = ("import sys\nfrom meeting_governance.lazy import module\n"
            "m = module('meeting_governance.receipts')\n"
            "before = 'cryptography.hazmat.primitives.asymmetric.ed25519' in sys.modules\n"
            "import meeting_governance.receipts\n"
            "from meeting_governance import receipts\n"
            "assert m.verify_receipt is receipts.verify_receipt\n"
            "assert receipts is meeting_governance.receipts is sys.modules[receipts.__name__]\n"
            "print(before, 'cryptography.hazmat.primitives.asymmetric.ed25519' in sys.modules)")
    done = python(tmp_path, code, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_threads_that_first_touch_a_lazy_module_together_all_see_it_whole(
        tmp_path: Path) -> None:
    """The daemon's jobs run in threads: the first use of a lazily named module (the Graph
    client's msal and requests) may come from two at once. Each must find the module whole."""
    code = ("import threading\nfrom meeting_governance.lazy import module\n"
            "names = ['requests', 'msal', 'meeting_governance.receipts', 'meeting_governance.audit']\n"
            "mods = [module(n) for n in names]\n"
            "barrier = threading.Barrier(16)\nerrors = []\n"
            "def touch(i):\n"
            "    barrier.wait()\n"
            "    try:\n"
            "        for m in mods:\n"
            "            assert m.__name__ and getattr(m, '__file__')\n"
            "            assert callable(getattr(m, {'requests': 'Session', 'msal': "
            "'ConfidentialClientApplication', 'meeting_governance.receipts': 'verify_receipt', "
            "'meeting_governance.audit': 'append'}[m.__name__]))\n"
            "    except Exception as exc:\n"
            "        errors.append(repr(exc))\n"
            "threads = [threading.Thread(target=touch, args=(i,)) for i in range(16)]\n"
            "[t.start() for t in threads]\n[t.join() for t in threads]\n"
            "print(errors or 'ok')")
    done = python(tmp_path, code, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok", done.stdout[-500:]


def main_then(home: Path, argv: list[str], probe: str) -> str:
    """Run one command through `cli.main` in a fresh interpreter, then `probe` in the same
    process (what it loaded, what it computed); what both printed."""
    code = ("import sys\nfrom meeting_governance.cli import main\n"
            f"sys.argv = ['meeting-governance', *{argv!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n" + probe)
    done = python(home, code)
    return done.stdout


def test_a_database_command_loads_no_graph_client_and_no_metrics(tmp_path: Path) -> None:
    """`optout list` reads the database: msal, requests and the Prometheus client (about a
    tenth of a second of start-up, bench/cli.py) load only where Graph or metrics are used."""
    home = tmp_path / "home"
    assert cli(home, "init").returncode == 0
    out = main_then(home, ["optout", "list", "--json"],
                    "print('LOADED', ','.join(m for m in ('msal', 'requests', 'urllib3', "
                    "'prometheus_client', 'numpy', 'av') if m in sys.modules))")
    assert out.startswith("[]"), out[:300]  # it did read the (empty) registry
    assert out.strip().endswith("LOADED"), out[-300:]


def test_listing_accounts_hashes_no_password(tmp_path: Path) -> None:
    """argon2 is slow by design (about 0.1 s): `users list` must not hash anything."""
    home = tmp_path / "home"
    assert cli(home, "init").returncode == 0
    out = main_then(home, ["users", "list", "--json"],
                    "from meeting_governance import users\n"
                    "print('HASHED', users.dummy_hash.cache_info().currsize)")
    assert out.startswith("[]"), out[:300]  # the listing did run
    assert out.strip().endswith("HASHED 0"), out[-300:]


@pytest.mark.parametrize(("package", "preloaded"), [
    ("graph", "[]"), ("purge", "[]"), ("dsr", "[]"), ("pipeline", "[]"), ("models", "[]"),
    # `optouts.matching` is a function and a module: it loads with the package (`lazy.exports`)
    ("optouts", "['meeting_governance.optouts.matching', 'meeting_governance.optouts.validation', "
                "'meeting_governance.optouts.views']"),
])
def test_each_package_name_loads_on_first_use(package: str, preloaded: str,
                                              tmp_path: Path) -> None:
    """The packages re-export their modules' names lazily (`lazy.exports`): every name in
    `__all__` still resolves, `dir()` lists them, a wrong name is an AttributeError — and
    importing the package alone loads none of its modules."""
    code = (
        "import importlib, sys\n"
        f"pkg = importlib.import_module('meeting_governance.{package}')\n"
        f"before = sorted(m for m in sys.modules if m.startswith('meeting_governance.{package}.'))\n"
        "missing = [n for n in pkg.__all__ if getattr(pkg, n, None) is None]\n"
        "missing += [n for n in pkg.__all__ if type(getattr(pkg, n)).__name__ == 'module']\n"
        "listed = set(pkg.__all__) <= set(dir(pkg))\n"
        "try:\n    pkg.no_such_name\n    wrong = 'no error'\n"
        "except AttributeError as exc:\n    wrong = str(exc)\n"
        "print(before, missing, listed, wrong, sep='|')\n")
    done = python(tmp_path, code)
    before, missing, listed, wrong = done.stdout.strip().split("|")
    assert before == preloaded
    assert missing == "[]"
    assert listed == "True"
    assert "has no attribute 'no_such_name'" in wrong


def test_a_short_command_collects_rarely_and_long_ones_as_usual(tmp_path: Path) -> None:
    """`main` raises the collector's thresholds for a short command and freezes what it holds
    before exit (bench/cli.py: about a quarter of a database command's CPU time); the commands
    that run for hours go back to the interpreter's defaults, so their memory is as measured."""
    home = tmp_path / "home"
    assert cli(home, "init").returncode == 0
    out = main_then(home, ["optout", "list", "--json"],
                    "import gc\nfrom meeting_governance import cliutil\n"
                    "print(gc.get_threshold() == cliutil.QUICK_GC_THRESHOLD, "
                    "gc.get_freeze_count() > 0)\n"
                    "cliutil.long_running()\n"
                    "print(gc.get_threshold() == cliutil.DEFAULT_GC_THRESHOLD "
                    "!= cliutil.QUICK_GC_THRESHOLD)\n")
    assert out.startswith("[]"), out[:300]
    assert out.split("\n")[-3:] == ["True True", "True", ""], out[-300:]


def test_every_long_running_command_restores_the_collector() -> None:
    import ast
    import inspect

    from meeting_governance.commands import pipeline, service

    for function in (pipeline.daemon, pipeline.process, pipeline.demo, service.serve,
                     service.emulator):
        tree = ast.parse(inspect.getsource(function))
        called = {n.func.id for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert "long_running" in called, function.__name__


def test_a_keyring_left_readable_stops_even_commands_that_never_load_it(tmp_path: Path) -> None:
    """The keys load on first use, but the keyring file's rules are checked as every command
    opens the context: `recordings list` refuses a keyring others can read, and names the fix."""
    home = tmp_path / "home"
    assert cli(home, "init").returncode == 0
    keys = home / "keys" / "keys.json"
    keys.chmod(0o644)
    done = cli(home, "recordings", "list")
    assert done.returncode != 0
    assert "is readable by others (mode 644)" in done.stderr
    assert f"chmod 600 {keys}" in done.stderr
    keys.chmod(0o600)
    assert cli(home, "recordings", "list").returncode == 0
