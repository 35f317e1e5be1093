"""Foundation commands: init, keys, audit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from meeting_governance.cliutil import (
    app_context,
    console,
    err_console,
    group,
    print_json,
    print_table,
    progress_bar,
    state,
)
from meeting_governance.errors import AuditChainBroken, KeyError_
from meeting_governance.lazy import module

if TYPE_CHECKING:
    from meeting_governance import audit as audit_log
    from meeting_governance import checkpoints, config, context, epochs, models, receipts, vault
else:  # loaded when a command uses them: `--help` stays fast
    audit_log = module("meeting_governance.audit")
    checkpoints = module("meeting_governance.checkpoints")
    config = module("meeting_governance.config")
    context = module("meeting_governance.context")
    epochs = module("meeting_governance.epochs")
    models = module("meeting_governance.models")
    receipts = module("meeting_governance.receipts")
    vault = module("meeting_governance.vault")

keys_app = group(help="Epoch keys and the signing key: status, rotate, migrate, retire, "
                 "export-public.", no_args_is_help=True)
audit_app = group(help="The hash-chained audit log and its signed checkpoints.",
                  no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")


def init(ctx: typer.Context) -> None:
    """Create config, data dir, database and keys. Idempotent: a second run changes nothing."""
    st = state(ctx)
    # A config file named by --config / MG_CONFIG that does not exist yet is init's to create.
    named = config.config_path(st.config)
    if named is not None and context.write_default_config(named):
        console.print(f"[green]created[/] config {named}")
        wrote_config = True
    else:
        wrote_config = False
    settings = st.settings()
    report = context.initialise(settings, named or settings.home / "config.toml")
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
                                    help="Kept for scripts: old keys are always destroyed now."),
) -> None:
    """Replace every live epoch key: re-wrap its data keys under a new key, destroy the old one.

    Items sealed before epoch keys are re-sealed first and their KEK versions retired.
    Payloads are not re-encrypted; old database backups become unreadable for everything
    whose key was replaced (that is the point: run it after a suspected key exposure)."""
    app = app_context(ctx)
    migrated = vault.migrate_legacy(app.engine, app.vault, batch_size=app.settings.keys.rotate_batch_size)
    with progress_bar("re-wrapping data keys") as update:
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            update(done[0], None)

        destroyed = epochs.rotate_all(app, reason="keys rotate",
                                      batch_size=app.settings.keys.rotate_batch_size,
                                      progress=step)
    with app.session() as session:
        app.audit(session, "keys.rotate", target_type="keyring", keys_destroyed=len(destroyed),
                  rewrapped=sum(d.rewrapped for d in destroyed), legacy_resealed=migrated)
    console.print(f"{len(destroyed)} epoch keys replaced and destroyed; "
                  f"{sum(d.rewrapped for d in destroyed)} data keys re-wrapped"
                  + (f"; {migrated} items from before epoch keys re-sealed" if migrated else ""))


@keys_app.command("migrate")
def keys_migrate(ctx: typer.Context) -> None:
    """Re-seal items wrapped by the KEKs of before epoch keys, then retire those KEKs (`init`
    does this too)."""
    app = app_context(ctx)
    count = vault.migrate_legacy(app.engine, app.vault, batch_size=app.settings.keys.rotate_batch_size)
    with app.session() as session:
        left = vault.legacy_counts(session)
        if count:
            app.audit(session, "keys.migrate", target_type="vault", items=count)
    console.print(f"{count} items re-sealed under epoch keys; KEK versions left: "
                  f"{', '.join(map(str, app.keys.legacy_versions())) or 'none'}"
                  + (f" (still wrapping {sum(left.values())} items)" if left else ""))


@keys_app.command("retire")
def keys_retire(ctx: typer.Context,
                version: int = typer.Argument(..., help="KEK version of before epoch keys")) -> None:
    """Remove an old KEK version from the keyring once no data key uses it."""
    app = app_context(ctx)
    with app.session() as session:
        in_use = vault.legacy_counts(session)
        if in_use.get(version):
            raise KeyError_(f"KEK version {version} still wraps {in_use[version]} data keys: "
                            "run `meeting-governance keys migrate` first")
        app.keys.retire_legacy(version)
        row = session.get(models.KekVersion, version)
        if row is not None:
            row.retired_at = app.clock.now()
            session.add(row)
        app.audit(session, "keys.retire", target_type="kek", target_id=str(version))
    console.print(f"KEK version {version} retired.")


@keys_app.command("status")
def keys_status(ctx: typer.Context,
                as_json: bool = typer.Option(False, "--json", help="Print JSON."),
                live_only: bool = typer.Option(False, "--live", help="Leave destroyed keys out.")
                ) -> None:
    """Epoch keys: each epoch, its generation, state, items it wraps, and destroyed keys."""
    app = app_context(ctx)
    rows = epochs.status(app, include_destroyed=not live_only)
    with app.session() as session:
        legacy = vault.legacy_counts(session)
    legacy_versions = {str(v): legacy.get(v, 0) for v in app.keys.legacy_versions()}
    problems = [f"epoch key {r.key_id} ({r.label}) is {r.state} but "
                f"{'missing from' if not r.in_keyring else 'still in'} the keyring"
                for r in rows if r.in_keyring != (r.state != epochs.DESTROYED)]
    data = {"keyring": app.keys.description,
            "epochs": [{**r.__dict__} for r in rows],
            "destroyed": sum(1 for r in rows if r.state == epochs.DESTROYED),
            "legacy_kek_versions": legacy_versions, "problems": problems}
    if as_json:
        print_json(data)
        return
    print_table(f"Epoch keys ({app.keys.description})",
                ["key id", "epoch", "gen", "state", "items", "fingerprint", "destroyed"],
                [[r.key_id, r.label, r.generation, r.state, r.items, r.fingerprint[:16],
                  r.destroyed_at] for r in rows])
    console.print(f"{data['destroyed']} destroyed, "
                  f"{sum(1 for r in rows if r.state != epochs.DESTROYED)} live")
    for version, count in legacy_versions.items():
        console.print(f"KEK version {version} (before epoch keys) wraps {count} items: "
                      "run `meeting-governance keys migrate`")
    for problem in problems:
        err_console.print(f"warning: {problem}")


@keys_app.command("export-public")
def keys_export_public(ctx: typer.Context,
                       out: Path | None = typer.Option(None, "--out", help="Write the PEM here "
                                                       "(default: standard output).")) -> None:
    """Write the Ed25519 public key that signs receipts and audit checkpoints (PEM), for
    `purge verify-receipt --public-key` and `openssl pkeyutl -verify`."""
    app = app_context(ctx)
    key = app.keys.signing_key()
    pem = receipts.public_key_pem(key)
    if out is None:
        sys.stdout.write(pem.decode("ascii"))
        return
    out.write_bytes(pem)
    err_console.print(f"public key written to {out} (SHA-256 {receipts.key_fingerprint(key)})")


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the whole chain, then against the signed checkpoints kept outside the database;
    exit non-zero naming the first changed, removed or moved entry."""
    app = app_context(ctx)
    result = checkpoints.verify(app)
    if not result.ok:
        where = f"entry {result.first_bad_seq}" if result.first_bad_seq else "its checkpoints"
        raise AuditChainBroken(f"audit chain broken at {where}: {result.problem} "
                               f"({result.entries} entries read)")
    console.print(f"audit chain intact: {result.entries} entries verified"
                  + (f", consistent with {result.checkpoints} signed checkpoints (latest at "
                     f"entry {result.latest_checkpoint_seq})" if result.checkpoints else "")
                  + ".")
    for note in result.notes:
        err_console.print(f"note: {note}")


@audit_app.command("checkpoint")
def audit_checkpoint(ctx: typer.Context) -> None:
    """Sign the chain head now; append it to the checkpoint file, the database and the log."""
    app = app_context(ctx)
    point = checkpoints.take(app, reason="audit checkpoint")
    console.print(f"checkpoint at entry {point.head_seq} ({point.head_hash[:16]}…) written to "
                  f"{app.settings.checkpoint_file}")


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
