"""Configuration: defaults, file, environment overrides, and errors that name the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from meeting_governance.config import Settings, load_settings, packaged_default_toml
from meeting_governance.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOML = REPO / "config" / "default.toml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MG_* from the outside; MG_HOME is a fresh directory."""
    home = tmp_path / "home"
    monkeypatch.setenv("MG_HOME", str(home))
    return home


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults_load(tmp_path: Path) -> None:
    settings = load_settings()
    home = tmp_path / "home"
    assert settings.home == home
    assert settings.database_url == f"sqlite:///{home / 'meeting-governance.db'}"
    assert settings.keys_file == home / "keys" / "keys.json"
    assert settings.staging_dir == home / "staging"
    assert settings.keys.provider == "file"
    assert settings.web.port == 8080
    assert settings.gate.allow_anonymous is False
    assert settings.retention.default_policy in settings.retention.policies


def test_home_defaults_to_xdg_not_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MG_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert load_settings().home == tmp_path / "xdg" / "meeting-governance"


@pytest.mark.parametrize(("var", "value", "read", "expected"), [
    ("MG_DATABASE__URL", "postgresql+psycopg://u@db:5432/mg",
     lambda s: s.database.url, "postgresql+psycopg://u@db:5432/mg"),
    ("MG_GRAPH__TENANT_ID", "contoso", lambda s: s.graph.tenant_id, "contoso"),
    ("MG_GRAPH__ORGANIZERS", "0f1e-a, 0f1e-b ,0f1e-c",
     lambda s: s.graph.organizers, ["0f1e-a", "0f1e-b", "0f1e-c"]),
    ("MG_GRAPH__ORGANIZERS", '["x", "y"]', lambda s: s.graph.organizers, ["x", "y"]),
    ("MG_GRAPH__ORGANIZERS", "", lambda s: s.graph.organizers, []),
    ("MG_DOWNLOAD__ALLOWED_CONTENT_TYPES", "audio/mp4,video/mp4",
     lambda s: s.download.allowed_content_types, ["audio/mp4", "video/mp4"]),
    ("MG_GATE__ALLOW_ANONYMOUS", "true", lambda s: s.gate.allow_anonymous, True),
    ("MG_GATE__ALLOW_ANONYMOUS", "0", lambda s: s.gate.allow_anonymous, False),
    ("MG_WEB__PORT", "9090", lambda s: s.web.port, 9090),
    ("MG_WEB__ENTRA_ROLE_MAP", '{"Dpo": "dpo"}', lambda s: s.web.entra_role_map, {"Dpo": "dpo"}),
    ("MG_LOGGING__LEVEL", "DEBUG", lambda s: s.logging.level, "DEBUG"),
])
def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, var: str, value: str,
                               read: Any, expected: Any) -> None:
    monkeypatch.setenv(var, value)
    assert read(load_settings()) == expected


def test_environment_beats_file_and_merges_sections(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[database]\nurl = "sqlite:///from-file.db"\n'
                                     "busy_timeout_ms = 1234\n[web]\nport = 8000\n")
    monkeypatch.setenv("MG_DATABASE__URL", "sqlite:///from-env.db")
    settings = load_settings(cfg)
    assert settings.database.url == "sqlite:///from-env.db"
    assert settings.database.busy_timeout_ms == 1234  # the rest of the section still from the file
    assert settings.web.port == 8000


def test_config_flag_env_and_home_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       _isolated: Path) -> None:
    write(_isolated / "config.toml", "[web]\nport = 1001\n")
    assert load_settings().web.port == 1001  # $MG_HOME/config.toml when present
    by_env = write(tmp_path / "env.toml", "[web]\nport = 1002\n")
    monkeypatch.setenv("MG_CONFIG", str(by_env))
    assert load_settings().web.port == 1002  # MG_CONFIG beats $MG_HOME/config.toml
    explicit = write(tmp_path / "flag.toml", "[web]\nport = 1003\n")
    assert load_settings(explicit).web.port == 1003  # --config beats MG_CONFIG


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*init"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(("body", "key"), [
    ("bogus = 1\n", "'bogus'"),
    ("[graph]\norganisers = []\n", "'graph.organisers'"),
    ("[databse]\nurl = ''\n", "'databse'"),
    ("[retention.policies.long]\ndays = 3\nmonths = 1\n", "'retention.policies.long.months'"),
])
def test_unknown_key_is_named(tmp_path: Path, body: str, key: str) -> None:
    cfg = write(tmp_path / "c.toml", body)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    assert "unknown key" in message and key in message and str(cfg) in message
    assert "[" not in message.split(":", 1)[1]  # no "[section]": rich would swallow it


@pytest.mark.parametrize(("body", "needles"), [
    ("[web]\nport = 0\n", ["web.port", "greater than or equal to 1", "MG_WEB__PORT"]),
    ("[web]\nport = 70000\n", ["web.port", "less than or equal to 65535"]),
    ("[web]\nport = 'abc'\n", ["web.port", "valid integer"]),
    ('[keys]\nprovider = "vault9"\n', ["keys.provider", "'file', 'env' or 'pkcs11'", "MG_KEYS__PROVIDER"]),
    ('[logging]\nlevel = "TRACE"\n', ["logging.level", "'DEBUG'", "'ERROR'"]),
    ("[graph]\nmax_retries = -1\n", ["graph.max_retries", "greater than or equal to 0"]),
    ("[retention.policies.standard]\ndays = -5\n", ["retention.policies.standard.days"]),
    ("[gate]\nallow_anonymous = 'perhaps'\n", ["gate.allow_anonymous", "boolean"]),
])
def test_wrong_value_names_key_and_what_is_allowed(tmp_path: Path, body: str,
                                                   needles: list[str]) -> None:
    cfg = write(tmp_path / "c.toml", body)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    for needle in needles:
        assert needle in str(info.value)


def test_wrong_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_WEB__PORT", "0")
    with pytest.raises(ConfigError, match=r"web\.port.*MG_WEB__PORT"):
        load_settings()


def test_environment_table_that_is_not_json_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_WEB__ENTRA_ROLE_MAP", "dpo=admin")
    with pytest.raises(ConfigError, match="MG_WEB__ENTRA_ROLE_MAP"):
        load_settings()


def test_invalid_toml_is_a_clear_error(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "[web\nport = 1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 1"):
        load_settings(cfg)


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg)


def test_default_policy_must_name_a_policy(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[retention]\ndefault_policy = "forever"\n')
    with pytest.raises(ConfigError, match=r"'forever' names no policy; allowed: standard"):
        load_settings(cfg)


def test_rule_must_name_a_policy(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[[retention.rules]]\npolicy = "board"\norganizer = "x"\n')
    with pytest.raises(ConfigError, match=r"'board' is not defined; allowed: standard"):
        load_settings(cfg)


def test_policies_and_rules_from_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[retention]\ndefault_policy = "short"\n'
                '[retention.policies.short]\ndays = 7\n[retention.policies.board]\ndays = 3650\n'
                '[[retention.rules]]\npolicy = "board"\ngroup = "g-1"\n')
    retention = load_settings(cfg).retention
    assert retention.default_policy == "short"
    assert retention.policies["board"].days == 3650
    assert retention.rules[0].group == "g-1"


# -- config/default.toml: parses, sets only defaults, documents every key ---------------------

def _model_keys(model: type[BaseModel], prefix: str) -> list[tuple[str, str]]:
    """(section, key) for every field, recursing into sections, dicts and lists of sections."""
    keys: list[tuple[str, str]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner: Any = None
        section = f"{prefix}.{name}" if prefix else name
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_model_keys(annotation, section))
            continue
        origin = get_origin(annotation)
        if origin is dict:
            inner, wildcard = get_args(annotation)[1], f"{section}.*"
        elif origin is list:
            inner, wildcard = get_args(annotation)[0], section
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys.append((prefix, name))
            keys.extend(_model_keys(inner, wildcard))
        else:
            keys.append((prefix, name))
    return keys


def _documented_keys(text: str) -> set[tuple[str, str]]:
    """(section, key) for every `key =` line, commented out or not, under its own header.

    A commented-out header (an example such as `# [[retention.rules]]`) holds the commented
    lines after it; live lines stay in the last live section. A header documents its own name.
    """
    live = ""
    example: str | None = None
    found: set[tuple[str, str]] = set()
    for line in text.splitlines():
        commented = line.lstrip().startswith("#")
        stripped = line.lstrip().lstrip("#").strip()
        header = re.fullmatch(r"\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?", stripped)
        if header:
            parts = header.group(1).split(".")
            for i in range(1, len(parts)):
                found.add((".".join(parts[:i]), parts[i]))
            found.add(("", parts[0]))
            if commented:
                example = header.group(1)
            else:
                live, example = header.group(1), None
            continue
        assignment = re.match(r"([A-Za-z0-9_]+)\s*=", stripped)
        if assignment:
            section = example if commented and example is not None else live
            found.add((section, assignment.group(1)))
    return found


def _matches(section: str, pattern: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", "[^.]+"), section) is not None


def test_default_toml_is_the_packaged_one_and_parses() -> None:
    assert DEFAULT_TOML.stat().st_size > 0, "config/default.toml is empty"
    assert packaged_default_toml().read_bytes() == DEFAULT_TOML.read_bytes()
    settings = load_settings(DEFAULT_TOML)
    assert settings.model_dump(exclude={"home"}) == Settings().model_dump(exclude={"home"})


def _compare(data: dict[str, Any], defaults: dict[str, Any], path: str, errors: list[str]) -> None:
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in defaults:
            errors.append(f"{where} is set but the model has no default for it")
        elif isinstance(value, dict) and isinstance(defaults[key], dict):
            _compare(value, defaults[key], where, errors)
        elif value != defaults[key]:
            errors.append(f"{where} = {value!r} but the model default is {defaults[key]!r}")


def test_default_toml_sets_only_model_defaults() -> None:
    data = tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))
    errors: list[str] = []
    defaults = Settings().model_dump(mode="json")
    # The endpoints are filled in from graph.cloud: the file leaves them empty on purpose, so
    # that changing graph.cloud alone moves all three.
    defaults["graph"].update(authority_host="", base_url="", scope="")
    _compare(data, defaults, "", errors)
    assert not errors, "\n".join(errors)
    assert Settings(**data).graph == Settings().graph


def test_default_toml_documents_every_key() -> None:
    documented = _documented_keys(DEFAULT_TOML.read_text(encoding="utf-8"))
    missing = [f"{section + '.' if section else ''}{key}"
               for section, key in _model_keys(Settings, "")
               if not any(key == k and _matches(s, section) for s, k in documented)]
    assert not missing, f"config/default.toml does not document: {', '.join(missing)}"


def test_redaction_policy_from_the_environment_and_a_bad_one_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().dsr.redact_uncertain == "redact"  # when in doubt, out
    monkeypatch.setenv("MG_DSR__REDACT_UNCERTAIN", "keep")
    assert load_settings().dsr.redact_uncertain == "keep"
    monkeypatch.setenv("MG_DSR__REDACT_UNCERTAIN", "maybe")
    with pytest.raises(ConfigError, match=r"dsr\.redact_uncertain"):
        load_settings()
