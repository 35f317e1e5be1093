"""Foundation commands: init, keys, audit."""

from __future__ import annotations

import typer

from meeting_governance import audit as audit_log
from meeting_governance.cliutil import (
    app_context,
    console,
    group,
    print_json,
    print_table,
    progress_bar,
    state,
)
from meeting_governance.config import config_path
from meeting_governance.context import initialise, write_default_config
from meeting_governance.errors import AuditChainBroken
from meeting_governance.vault import register_kek_versions, rewrap_all, versions_in_use

keys_app = group(help="Key-encryption keys: rotate, retire, status.", no_args_is_help=True)
audit_app = group(help="The hash-chained audit log.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")


def init(ctx: typer.Context) -> None:
    """Create config, data dir, database and keys. Idempotent: a second run changes nothing."""
    st = state(ctx)
    # A config file named by --config / MG_CONFIG that does not exist yet is init's to create.
    named = config_path(st.config)
    if named is not None and write_default_config(named):
        console.print(f"[green]created[/] config {named}")
        wrote_config = True
    else:
        wrote_config = False
    settings = st.settings()
    report = initialise(settings, named or settings.home / "config.toml")
    for line in report.created:
        console.print(f"[green]created[/] {line}")
    for line in report.migrations:
        console.print(f"[green]migrated[/] database to revision {line}")
    if not report.changed and not wrote_config:
        console.print("Already initialised: nothing changed.")
        for line in report.existing:
            console.print(f"  kept {line}")


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    retire_old: bool = typer.Option(False, "--retire-old",
                                    help="After re-wrapping, retire every older KEK version."),
) -> None:
    """Add a new KEK version and re-wrap every data key with it (payloads are not re-encrypted)."""
    app = app_context(ctx)
    version = app.keys.add_version()
    with app.session() as session:
        register_kek_versions(session, app.keys, app.clock)
        app.audit(session, "keys.rotate", target_type="kek", target_id=str(version))
    with progress_bar("re-wrapping data keys") as update:
        count = rewrap_all(app.engine, app.vault, batch_size=app.settings.keys.rotate_batch_size,
                           progress=lambda done, total: update(done, total))
    console.print(f"KEK version {version} is current; {count} data keys re-wrapped.")
    if retire_old:
        _retire_unused(ctx, [v for v in app.keys.versions() if v != version])


@keys_app.command("retire")
def keys_retire(ctx: typer.Context, version: int = typer.Argument(..., help="KEK version")) -> None:
    """Remove an old KEK version from the keyring once no data key uses it."""
    _retire_unused(ctx, [version])


def _retire_unused(ctx: typer.Context, versions: list[int]) -> None:
    from meeting_governance.errors import KeyError_

    app = app_context(ctx)
    with app.session() as session:
        in_use = versions_in_use(session)
        for version in versions:
            if in_use.get(version):
                raise KeyError_(f"KEK version {version} still wraps {in_use[version]} data keys: "
                                "run `meeting-governance keys rotate` first")
            app.keys.retire(version)
            from meeting_governance.models import KekVersion

            row = session.get(KekVersion, version)
            if row is not None:
                row.retired_at = app.clock.now()
                session.add(row)
            app.audit(session, "keys.retire", target_type="kek", target_id=str(version))
            console.print(f"KEK version {version} retired.")


@keys_app.command("status")
def keys_status(ctx: typer.Context,
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """KEK versions and how many data keys each wraps."""
    app = app_context(ctx)
    with app.session() as session:
        in_use = versions_in_use(session)
    rows = [{"version": v, "current": v == app.keys.current_version(),
             "data_keys": in_use.get(v, 0)} for v in app.keys.versions()]
    if as_json:
        print_json(rows)
    else:
        print_table("KEK versions", ["version", "current", "data keys"],
                    [[r["version"], r["current"], r["data_keys"]] for r in rows])


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the whole chain; exit non-zero naming the first changed, removed or moved entry."""
    app = app_context(ctx)
    result = audit_log.verify(app.engine)
    if not result.ok:
        raise AuditChainBroken(f"audit chain broken at entry {result.first_bad_seq}: "
                               f"{result.problem} ({result.entries} entries read)")
    console.print(f"audit chain intact: {result.entries} entries verified.")


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(100, "--limit", min=1, help="How many of the newest entries."),
    target: str | None = typer.Option(None, "--target", help="Only entries about this id."),
    action: str | None = typer.Option(None, "--action", help="Only this action."),
) -> None:
    """The newest audit entries (ids and blind values only, never personal data)."""
    app = app_context(ctx)
    with app.session() as session:
        rows = audit_log.entries(session, limit=limit, target_id=target, action=action)
    data = [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action,
             "target_type": e.target_type, "target_id": e.target_id, "details": e.details,
             "hash": e.hash} for e in rows]
    if as_json:
        print_json(data)
    else:
        print_table("Audit log", ["seq", "at", "actor", "action", "target", "details"],
                    [[d["seq"], d["at"], d["actor"], d["action"],
                      f"{d['target_type']}:{d['target_id']}", d["details"]] for d in data])
