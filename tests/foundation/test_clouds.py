"""graph.cloud presets, the check of hand-set endpoints, and the proxy keys, at config load."""

from __future__ import annotations

from pathlib import Path

import pytest

from meeting_governance.config import GraphSettings, load_settings
from meeting_governance.errors import ConfigError

# From https://learn.microsoft.com/graph/deployments (both tables), written out here rather
# than read from clouds.py, so a typo there cannot also be the expectation.
EXPECTED = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0",
               "https://graph.microsoft.com/.default"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0",
              "https://graph.microsoft.us/.default"),
    "usgovdod": ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us/v1.0",
                 "https://dod-graph.microsoft.us/.default"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0",
              "https://microsoftgraph.chinacloudapi.cn/.default"),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MG_CONFIG", "MG_GRAPH__CLOUD", "MG_GRAPH__AUTHORITY_HOST", "MG_GRAPH__BASE_URL",
                 "MG_GRAPH__SCOPE", "MG_GRAPH__PROXY", "MG_GRAPH__NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MG_HOME", str(tmp_path))


def _write(tmp_path: Path, graph: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[graph]\n" + graph, encoding="utf-8")
    return path


def _endpoints(graph: GraphSettings) -> tuple[str, str, str]:
    return graph.authority_host, graph.base_url, graph.scope


@pytest.mark.parametrize("cloud", sorted(EXPECTED))
def test_each_preset_sets_the_three_endpoints(tmp_path: Path, cloud: str) -> None:
    settings = load_settings(_write(tmp_path, f'cloud = "{cloud}"\n'))
    assert _endpoints(settings.graph) == EXPECTED[cloud]


def test_the_default_is_the_global_service(tmp_path: Path) -> None:
    assert _endpoints(load_settings().graph) == EXPECTED["global"]


def test_the_cloud_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_GRAPH__CLOUD", "usgovdod")
    assert _endpoints(load_settings().graph) == EXPECTED["usgovdod"]


def test_hand_set_endpoints_of_the_same_cloud_are_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, 'cloud = "china"\n'
                            'authority_host = "https://login.partner.microsoftonline.cn"\n'
                            'base_url = "https://microsoftgraph.chinacloudapi.cn/beta"\n')
    graph = load_settings(path).graph
    assert _endpoints(graph) == ("https://login.partner.microsoftonline.cn",
                                 "https://microsoftgraph.chinacloudapi.cn/beta",
                                 "https://microsoftgraph.chinacloudapi.cn/.default")


def test_china_authority_with_the_global_graph_fails_naming_both_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, 'authority_host = "https://login.chinacloudapi.cn"\n'
                            'base_url = "https://graph.microsoft.com/v1.0"\n')
    with pytest.raises(ConfigError) as failed:
        load_settings(path)
    message = str(failed.value)
    assert "graph.authority_host" in message and "graph.base_url" in message
    assert "China" in message and "the global service" in message
    # Both were set by hand and disagree: the fix is to name the tenant's cloud.
    assert "set graph.cloud to your tenant's cloud" in message
    assert "leave graph.authority_host, graph.base_url and graph.scope empty" in message
    assert str(path) in message


def test_a_china_authority_under_the_default_cloud_suggests_china(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as failed:
        load_settings(_write(tmp_path, 'authority_host = "https://login.chinacloudapi.cn"\n'))
    message = str(failed.value)
    assert 'graph.base_url = https://graph.microsoft.com/v1.0 (from graph.cloud = "global")' \
        in message
    assert 'set graph.cloud = "china"' in message


def test_a_hand_set_endpoint_of_another_cloud_than_the_preset_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_GRAPH__CLOUD", "usgov")
    monkeypatch.setenv("MG_GRAPH__BASE_URL", "https://dod-graph.microsoft.us/v1.0")
    with pytest.raises(ConfigError) as failed:
        load_settings()
    message = str(failed.value)
    assert "graph.base_url = https://dod-graph.microsoft.us/v1.0" in message
    assert 'graph.authority_host = https://login.microsoftonline.us (from graph.cloud = "usgov")' \
        in message
    assert 'set graph.cloud = "usgovdod"' in message


def test_a_scope_of_another_cloud_fails(tmp_path: Path) -> None:
    path = _write(tmp_path, 'cloud = "usgov"\nscope = "https://graph.microsoft.com/.default"\n')
    with pytest.raises(ConfigError, match=r"graph\.scope = https://graph\.microsoft\.com"):
        load_settings(path)


def test_a_loopback_endpoint_needs_the_custom_cloud(tmp_path: Path) -> None:
    path = _write(tmp_path, 'authority_host = "https://127.0.0.1:8443"\n'
                            'base_url = "https://127.0.0.1:8443/v1.0"\n')
    with pytest.raises(ConfigError) as failed:
        load_settings(path)
    assert "belongs to no Microsoft cloud" in str(failed.value)
    assert 'graph.cloud = "custom" is for the built-in emulator' in str(failed.value)


def test_custom_takes_the_emulator_and_derives_its_scope(tmp_path: Path) -> None:
    path = _write(tmp_path, 'cloud = "custom"\nauthority_host = "https://127.0.0.1:8443"\n'
                            'base_url = "https://127.0.0.1:8443/v1.0"\n')
    assert _endpoints(load_settings(path).graph) == (
        "https://127.0.0.1:8443", "https://127.0.0.1:8443/v1.0", "https://127.0.0.1:8443/.default")


def test_custom_needs_both_endpoints(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'graph\.cloud = "custom".*graph\.base_url must be set'):
        load_settings(_write(tmp_path, 'cloud = "custom"\n'
                                       'authority_host = "https://127.0.0.1:8443"\n'))


def test_custom_still_refuses_two_microsoft_clouds(tmp_path: Path) -> None:
    path = _write(tmp_path, 'cloud = "custom"\nauthority_host = "https://login.chinacloudapi.cn"\n'
                            'base_url = "https://graph.microsoft.com/v1.0"\n')
    with pytest.raises(ConfigError, match="do not belong to one cloud"):
        load_settings(path)


def test_an_unknown_cloud_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as failed:
        load_settings(_write(tmp_path, 'cloud = "germany"\n'))
    assert "graph.cloud" in str(failed.value) and "'usgovdod'" in str(failed.value)


@pytest.mark.parametrize("url", ["http://login.microsoftonline.com", "login.microsoftonline.com"])
def test_endpoints_must_be_https(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"graph\.authority_host must be an https:// URL"):
        load_settings(_write(tmp_path, f'authority_host = "{url}"\n'))


def test_proxy_keys_load_from_file_and_environment(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, 'proxy = "http://proxy.corp.example:3128"\n'
                            'no_proxy = ["10.0.0.0/8", ".corp.example"]\n')
    graph = load_settings(path).graph
    assert graph.proxy == "http://proxy.corp.example:3128"
    assert graph.no_proxy == ["10.0.0.0/8", ".corp.example"]
    monkeypatch.setenv("MG_GRAPH__PROXY", "http://mg:pw@proxy.corp.example:8080")
    monkeypatch.setenv("MG_GRAPH__NO_PROXY", "localhost, 127.0.0.1")
    graph = load_settings(path).graph
    assert graph.proxy == "http://mg:pw@proxy.corp.example:8080"
    assert graph.no_proxy == ["localhost", "127.0.0.1"]


@pytest.mark.parametrize("bad", ["proxy.corp.example:3128", "ftp://proxy.corp.example:21",
                                 "http://:3128", "http://proxy.corp.example:99999"])
def test_a_bad_proxy_url_is_refused_without_showing_a_password(
        monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("MG_GRAPH__PROXY", bad.replace("//", "//mg:hunter2@", 1))
    with pytest.raises(ConfigError) as failed:
        load_settings()
    message = str(failed.value)
    assert "graph.proxy" in message and "http://HOST:PORT" in message
    assert "hunter2" not in message
