"""What ships: the product wheel holds no emulator, its configuration points at no emulator, and
the demo without the emulator installed says how to get it.

The wheels are built for real (pip + hatchling, offline, no build isolation) and their file
lists and metadata read back, as a packager or an auditor of a production install would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from meeting_governance.config import GraphSettings
from meeting_governance.errors import GraphError
from meeting_governance.graph import GraphClient

from .conftest import assert_one_clear_line, cli_env

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def build_wheel(project: Path, out: Path) -> zipfile.ZipFile:
    """`pip wheel` of one project directory, without its dependencies and without the network."""
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(out), str(project)],
        capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return zipfile.ZipFile(wheels[0])


def metadata(wheel: zipfile.ZipFile) -> tuple[list[str], list[str]]:
    """(Requires-Dist, Provides-Extra) from the wheel's METADATA."""
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    message = Parser().parsestr(wheel.read(name).decode("utf-8"))
    return message.get_all("Requires-Dist") or [], message.get_all("Provides-Extra") or []


@pytest.fixture(scope="module")
def product_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return build_wheel(REPO, tmp_path_factory.mktemp("product-wheel"))


def test_the_product_wheel_holds_no_emulator(product_wheel: zipfile.ZipFile) -> None:
    names = product_wheel.namelist()
    assert "meeting_governance/cli.py" in names  # the product itself is there
    assert "meeting_governance/data/default.toml" in names
    assert not [n for n in names if "mg_emulator" in n or "/emulator/" in n
                or n.endswith(("emulator.py", ".m4a", ".mp4"))], names
    # Nothing of the fake sign-in authority either: no throwaway passwords, no test CA.
    for name in names:
        if name.endswith((".py", ".toml", ".csv", ".html", ".json")):
            text = product_wheel.read(name).decode("utf-8", "replace")
            assert "emulator-secret-not-for-production" not in text, name
            assert "emulator-dpo-password" not in text, name
            assert "trustme" not in text, name


def test_the_emulator_comes_only_with_the_demo_and_dev_extras(
        product_wheel: zipfile.ZipFile) -> None:
    requires, extras = metadata(product_wheel)
    assert {"demo", "dev"} <= set(extras)
    emulator = [r for r in requires if r.startswith("meeting-governance-emulator")]
    assert len(emulator) == 2, requires
    assert all("extra ==" in r for r in emulator), emulator  # never a plain dependency
    assert {r.split("extra ==")[1].strip().strip("'\"") for r in emulator} == {"demo", "dev"}


def test_the_emulator_wheel_carries_its_demo(tmp_path: Path) -> None:
    wheel = build_wheel(REPO / "emulator", tmp_path)
    names = set(wheel.namelist())
    for needed in ("mg_emulator/server.py", "mg_emulator/tls.py", "mg_emulator/scenarios/demo.toml",
                   "mg_emulator/scenarios/demo-optouts.csv", "mg_emulator/media/manifest.json",
                   "mg_emulator/media/sample-1.m4a", "mg_emulator/media/LICENSE"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith("meeting_governance/")]
    requires, _ = metadata(wheel)
    assert any(r.startswith("trustme") for r in requires), requires
    assert not [r for r in requires if r.startswith("meeting-governance ")], requires


def test_the_shipped_configuration_points_at_microsoft_not_an_emulator(
        product_wheel: zipfile.ZipFile) -> None:
    shipped = tomllib.loads(product_wheel.read("meeting_governance/data/default.toml").decode())
    graph = shipped["graph"]
    assert graph["tenant_id"] == "" and graph["client_id"] == ""
    # The endpoints are left to the cloud preset: Microsoft's global cloud, not a loopback.
    assert graph["cloud"] == "global"
    assert graph["authority_host"] == graph["base_url"] == graph["scope"] == ""
    assert graph["ca_bundle"] == ""
    defaults = GraphSettings()
    assert defaults.authority_host == "https://login.microsoftonline.com"
    assert defaults.base_url == "https://graph.microsoft.com/v1.0"
    assert (defaults.tenant_id, defaults.client_id) == ("", "")
    for value in (defaults.authority_host, defaults.base_url, defaults.scope):
        assert value.startswith("https://") and not any(h in value for h in LOOPBACK), value
    assert "emulator" not in " ".join(str(v) for v in defaults.model_dump().values())


@pytest.mark.parametrize(("values", "named"), [
    ({}, "graph.tenant_id (MG_GRAPH__TENANT_ID) and graph.client_id (MG_GRAPH__CLIENT_ID)"),
    ({"tenant_id": "contoso.onmicrosoft.com"}, "set graph.client_id (MG_GRAPH__CLIENT_ID) to"),
    ({"client_id": "11111111-2222-3333-4444-555555555555"},
     "set graph.tenant_id (MG_GRAPH__TENANT_ID) to"),
])
def test_graph_unconfigured_is_refused_with_the_keys_to_set(values: dict[str, str],
                                                             named: str) -> None:
    settings = GraphSettings(client_secret="a-secret", **values)
    with pytest.raises(GraphError, match="Microsoft Graph is not configured") as caught:
        GraphClient.from_settings(settings)
    assert named in str(caught.value)
    assert not caught.value.retryable  # configuration, not a passing outage


def test_poll_without_a_tenant_says_what_to_configure(tmp_path: Path) -> None:
    home = tmp_path / "mg"
    init = subprocess.run([sys.executable, "-m", "meeting_governance", "init"],
                          env=cli_env(home), capture_output=True, text=True, timeout=120,
                          check=False)
    assert init.returncode == 0, init.stderr
    run = subprocess.run([sys.executable, "-m", "meeting_governance", "poll"],
                         env=cli_env(home, MG_GRAPH__CLIENT_SECRET="s",
                                     MG_GRAPH__ORGANIZERS="6f1c3a52-8d0e-4b7a-9c21-3e5f7a9b1c01"),
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0
    assert_one_clear_line(run.stderr, "Microsoft Graph is not configured: set graph.tenant_id")


# The emulator made absent the way Python itself does it (a None entry in sys.modules makes
# `import mg_emulator` raise ModuleNotFoundError), then the real console entry point.
_WITHOUT_EMULATOR = ("import sys; sys.modules['mg_emulator'] = None; sys.argv[0] = "
                     "'meeting-governance'; from meeting_governance.cli import main; main()")


@pytest.mark.parametrize("command", [["demo"], ["emulator", "--port", "0"]])
def test_without_the_emulator_the_demo_says_to_install_the_demo_extra(
        tmp_path: Path, command: list[str]) -> None:
    home = tmp_path / "mg"
    env = cli_env(home)
    run = subprocess.run([sys.executable, "-c", _WITHOUT_EMULATOR, *command], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2, run.stdout + run.stderr
    assert_one_clear_line(run.stderr, "the Microsoft Graph emulator is not installed",
                          "install the demo extra: pip install -e '.[demo]'")
    assert not (home / "demo").exists()  # refused before anything was written
    assert not (home / "emulator").exists()


def test_the_emulator_runs_on_its_own(tmp_path: Path) -> None:
    """`meeting-governance-emulator`'s code path without the product: a bad scenario is one
    clear line, not a traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text('tenant_id = "t"\n[[organizers]]\nid = "o"\ncolour = "red"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env["MG_HOME"] = str(tmp_path / "mg")
    run = subprocess.run([sys.executable, "-m", "mg_emulator", "--scenario", str(bad)], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "meeting-governance-emulator: error:" in run.stderr
    assert "unknown key(s) colour" in run.stderr
