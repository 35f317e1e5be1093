"""Retention, legal holds and the purge: parse, call one function, print."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from meeting_governance.clock import parse_instant
from meeting_governance.commands.directory import OFFLINE_HELP, identity_for
from meeting_governance.errors import GovernanceError, InputError, IntegrityError, PurgeIncomplete
from meeting_governance.lazy import module

if TYPE_CHECKING:
    from meeting_governance import holds, receipts
    from meeting_governance import keys as key_provider
    from meeting_governance import purge as purging
    from meeting_governance import retention as policies
    from meeting_governance.purge import PurgeReport
    from meeting_governance.retention import ApplyReport, Change
else:  # loaded when a command uses them: `--help` stays fast
    holds = module("meeting_governance.holds")
    key_provider = module("meeting_governance.keys")
    purging = module("meeting_governance.purge")
    receipts = module("meeting_governance.receipts")
    policies = module("meeting_governance.retention")

purge_app = group(
    help="Purge every transcript whose retention ended (crypto-shredding), with a signed "
    "receipt; `purge verify-receipt FILE` checks one.",
    invoke_without_command=True,
)
hold_app = group(help="Legal holds: set, release, list.", no_args_is_help=True)
retention_app = group(help="Retention policies: `retention policies` lists them, `retention "
                      "apply` re-applies them after a change.",
                            no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(purge_app, name="purge")
    app.add_typer(hold_app, name="hold")
    app.add_typer(retention_app, name="retention")


# -- purge ------------------------------------------------------------------------------------
def report_dict(report: PurgeReport) -> dict[str, Any]:
    """The report as `purge --json` prints it. A dry run purges nothing: its count is
    `would_purge`, and `purged` is 0 (a script reading `purged` must not believe it happened)."""
    counts = ({"purged": 0, "would_purge": report.purged} if report.dry_run
              else {"purged": report.purged})
    return {
        "run_id": report.run_id, "as_of": report.as_of, "dry_run": report.dry_run,
        **counts, "by_policy": report.by_policy, "held": report.held,
        "skipped": report.skipped,
        "errors": [{"transcript_id": e.transcript_id, "error": e.error} for e in report.errors],
        "tombstone_ids": list(report.tombstone_ids), "staging_deleted": report.staging_deleted,
        "batches": report.batches, "seconds": round(report.seconds, 3),
        "receipt_id": report.receipt_id, "receipt_path": report.receipt_path,
        "vacuumed": report.vacuumed, "metadata_purged": report.metadata_purged,
        "keys_destroyed": [{"key_id": d.key_id, "epoch": d.label, "fingerprint": d.fingerprint,
                            "reason": d.reason, "rewrapped": d.rewrapped}
                           for d in report.keys_destroyed],
        "epochs_due": report.epochs_due, "compaction": report.compaction.status,
        "complete": report.complete,
    }


@purge_app.callback()
def purge(ctx: typer.Context,
          dry_run: bool = typer.Option(False, "--dry-run", help="Report what is due; change nothing."),
          as_of: str | None = typer.Option(None, "--as-of", metavar="ISO8601",
                                           help="Purge what is due at this instant (default: now)."),
          batch_size: int | None = typer.Option(None, "--batch-size", min=1,
                                                help="Transcripts per transaction (default: "
                                                "purge.batch_size)."),
          as_json: bool = typer.Option(False, "--json", help="Print the report as JSON only.")) -> None:
    """Purge every transcript that is due: shred its data, destroy the epoch keys that wrapped
    it (re-wrapping what must live on), keep a tombstone, sign a receipt.

    Exits 1 when a transcript could not be purged or SQLite compaction could not complete
    (the report says which); the destroyed keys hold either way."""
    if ctx.invoked_subcommand is not None:
        return
    app = app_context(ctx)
    try:
        instant = parse_instant(as_of) if as_of else app.clock.now()
    except ValueError:
        raise InputError(f"--as-of {as_of!r} is not an ISO 8601 instant "
                         "(e.g. 2026-01-31 or 2026-01-31T03:00:00Z)") from None
    if as_json:
        report = purging.purge(app, as_of=instant, dry_run=dry_run, batch_size=batch_size)
        print_json(report_dict(report))
    else:
        with progress_bar("dry run" if dry_run else "purging") as update:
            report = purging.purge(app, as_of=instant, dry_run=dry_run, batch_size=batch_size,
                               progress=update)
        _print_report(report)
    if not report.dry_run and not report.complete:
        problems = ([f"{len(report.errors)} transcripts could not be purged (they stay due)"]
                    if report.errors else [])
        if not report.compaction.ok:
            problems.append(f"compaction {report.compaction.status}")
        raise PurgeIncomplete("purge incomplete: " + "; ".join(problems)
                              + " — the receipt records this; run the purge again")


def _print_report(report: PurgeReport) -> None:
    verb = "would purge" if report.dry_run else "purged"
    rows: list[tuple[str, Any]] = [(f"{verb} ({policy})", n) for policy, n in report.by_policy.items()]
    rows += [(verb, report.purged), ("held (legal hold)", report.held),
             ("skipped (no retain_until)", report.skipped), ("errors", len(report.errors)),
             ("recordings' metadata " + ("due" if report.dry_run else "purged"),
              report.metadata_purged),
             ("epoch keys " + ("due to retire or rotate" if report.dry_run else "destroyed"),
              report.epochs_due if report.dry_run else len(report.keys_destroyed)),
             ("staging files " + ("to delete" if report.dry_run else "deleted"),
              report.staging_deleted)]
    if not report.dry_run:
        rows.append(("compaction", report.compaction.status))
    if report.receipt_path:
        rows.append(("receipt", report.receipt_path))
    title = f"Purge as of {report.as_of.isoformat(timespec='seconds')}"
    print_table(title + (" (dry run)" if report.dry_run else ""), ["", "count"], rows)
    for failure in report.errors:
        err_console.print(f"failed: {failure.transcript_id}: {failure.error}")


@purge_app.command("verify-receipt")
def verify_receipt(ctx: typer.Context, file: Path = typer.Argument(..., exists=False),
                   public_key: str | None = typer.Option(
                       None, "--public-key", help="The trusted signing key: a PEM file from "
                       "`keys export-public`, or base64 of the raw key (default: this "
                       "installation's key, when its keyring is readable here)."),
                   as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
    """Check a purge receipt: its signature, its signer, and (with the keyring) that every
    epoch key it names as destroyed is really gone. Exit 1 on any doubt, including an
    unverified signer."""
    trusted = None
    keyring = None
    if public_key is not None:
        try:
            trusted = receipts.load_public_key(public_key)
        except (ValueError, OSError) as exc:
            raise InputError(f"--public-key is not an Ed25519 public key ({exc}); give the PEM "
                             "file `meeting-governance keys export-public` writes") from None
    try:
        keyring = key_provider.provider_from_settings(state(ctx).settings())
    except GovernanceError:
        keyring = None
    if trusted is None and keyring is not None:
        trusted = keyring.signing_key().public_key()
    check = receipts.verify_receipt(file, trusted)
    gone_checked = False
    if check.signer_checked and keyring is not None:
        still = tuple(k for k in check.destroyed_keys if keyring.exists(k))
        gone_checked = True
        if still:
            check = replace(check, ok=False, keys_still_present=still,
                            problem=f"{len(still)} epoch keys the receipt names as destroyed are "
                            f"still in the {keyring.description}: {', '.join(still)}")
    if as_json:
        print_json({**{k: v for k, v in check.__dict__.items() if k != "body"},
                    "destroyed_keys_checked": gone_checked})
    elif check.ok:
        console.print(f"receipt {check.receipt_id} is valid: {check.purged} tombstones, "
                      f"{len(check.destroyed_keys)} epoch keys destroyed"
                      + (" (confirmed absent from the keyring)" if gone_checked else "")
                      + f", audit head {check.audit_head_seq}, signed {check.created_at}")
    if not check.ok:
        raise IntegrityError(f"receipt {file} does not verify: {check.problem}")


# -- holds --------------------------------------------------------------------------------------
def _target_opts(transcript_id: str | None, email: str | None, object_id: str | None,
                 meeting: str | None) -> dict[str, str | None]:
    return {"transcript_id": transcript_id, "email": email, "object_id": object_id,
            "meeting_id": meeting}


@hold_app.command("set")
def hold_set(ctx: typer.Context,
             transcript_id: str | None = typer.Argument(
                 None, help="Transcript to hold (its id or a unique prefix, 4+ characters)."),
             email: str | None = typer.Option(None, "--email", help="Hold every transcript of "
                                              "this person's meetings, present and future."),
             object_id: str | None = typer.Option(None, "--object-id", help="Same, by Entra id."),
             meeting: str | None = typer.Option(None, "--meeting", help="Hold a meeting's transcripts."),
             reason: str = typer.Option(..., "--reason", help="Why (kept sealed; may name people)."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
             offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP)) -> None:
    """Put a transcript, a person or a meeting under legal hold: nothing covered is purged.

    A person hold covers every identifier the directory knows for them (object id, mail, UPN,
    aliases, other mails, a guest's own address)."""
    app = app_context(ctx)
    identity = None
    if email or object_id:
        from meeting_governance.identity import validated_email, validated_object_id

        identity = identity_for(app, email=validated_email(email) if email else None,
                                object_id=validated_object_id(object_id) if object_id else None,
                                offline=offline)
        err_console.print(identity.note, markup=False)
    info = holds.set_hold(app, identity, reason=reason,
                          **_target_opts(transcript_id, email, object_id, meeting))
    if as_json:
        print_json(info)
    else:
        console.print(f"hold {info.id} set on {info.kind} {info.target} "
                      f"({info.covered} transcripts covered now)")


@hold_app.command("release")
def hold_release(ctx: typer.Context,
                 transcript_id: str | None = typer.Argument(
                     None, help="Transcript whose hold ends (id or unique prefix)."),
                 hold_id: str | None = typer.Option(None, "--hold-id", help="The hold, by id or prefix."),
                 email: str | None = typer.Option(None, "--email", help="A person hold, by address."),
                 object_id: str | None = typer.Option(None, "--object-id", help="A person hold, by id."),
                 meeting: str | None = typer.Option(None, "--meeting", help="A meeting hold."),
                 reason: str = typer.Option(..., "--reason", help="Why (kept sealed)."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
    """Release a legal hold: what it covered is due again at retain_until, or now if later."""
    app = app_context(ctx)
    chosen = holds.find_active(app, hold_id=hold_id,
                               **_target_opts(transcript_id, email, object_id, meeting))
    info = holds.release_hold(app, chosen, reason=reason)
    if as_json:
        print_json(info)
    else:
        console.print(f"hold {info.id} on {info.kind} {info.target} released")


@hold_app.command("list")
def hold_list(ctx: typer.Context,
              include_released: bool = typer.Option(False, "--all", help="Released holds too."),
              reasons: bool = typer.Option(False, "--reasons", help="Decrypt the reasons (audited)."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
    """Legal holds, newest first."""
    infos = holds.list_holds(app_context(ctx), include_released=include_released,
                             with_reasons=reasons)
    if as_json:
        print_json([{**info.__dict__, "active": info.active} for info in infos])
        return
    columns = ["id", "kind", "target", "set by", "set at", "released at", "covers"]
    if reasons:
        columns.append("reason")
    print_table("Legal holds", columns, [
        [i.id, i.kind, i.target, i.set_by, i.set_at, i.released_at, i.covered]
        + ([i.reason] if reasons else []) for i in infos])


# -- retention ------------------------------------------------------------------------------------
def _change_dict(change: Change) -> dict[str, Any]:
    return {**change.__dict__, "direction": change.direction}


@retention_app.command("apply")
def retention_apply(ctx: typer.Context,
                    dry_run: bool = typer.Option(False, "--dry-run", help="Report only."),
                    allow_shorten: bool = typer.Option(
                        False, "--allow-shorten", help="Also move due dates earlier (brings "
                        "purges forward; refused otherwise)."),
                    as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
    """Re-evaluate stored transcripts after a policy change; report what moves earlier or later."""
    report = policies.apply_policies(app_context(ctx), dry_run=dry_run, allow_shorten=allow_shorten)
    if as_json:
        print_json(_apply_dict(report))
        return
    rows = [[c.transcript_id, c.direction, c.old_policy, c.new_policy, c.old_retain_until,
             c.new_retain_until] for c in report.later + report.earlier + report.relabelled]
    rows += [[c.transcript_id, "earlier (refused: --allow-shorten)", c.old_policy, c.new_policy,
              c.old_retain_until, c.new_retain_until] for c in report.refused_shorten]
    print_table("Retention changes" + (" (dry run)" if dry_run else ""),
                ["transcript", "moves", "policy was", "policy now", "due was", "due now"], rows)
    console.print(f"examined {report.examined}, unchanged {report.unchanged}, later "
                  f"{len(report.later)}, earlier {len(report.earlier)}, refused "
                  f"{len(report.refused_shorten)}, group rules not evaluated "
                  f"{report.unresolved_groups}")


def _apply_dict(report: ApplyReport) -> dict[str, Any]:
    return {"dry_run": report.dry_run, "allow_shorten": report.allow_shorten,
            "examined": report.examined, "unchanged": report.unchanged,
            "applied": report.applied, "unresolved_groups": report.unresolved_groups,
            "later": [_change_dict(c) for c in report.later],
            "earlier": [_change_dict(c) for c in report.earlier],
            "relabelled": [_change_dict(c) for c in report.relabelled],
            "refused_shorten": [_change_dict(c) for c in report.refused_shorten]}


@retention_app.command("policies")
def retention_policies(ctx: typer.Context,
                       as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
    """The configured policies and the rules that choose them (first match wins)."""
    retention = state(ctx).settings().retention
    policies = [{"name": name, "days": p.days, "description": p.description,
                 "default": name == retention.default_policy}
                for name, p in sorted(retention.policies.items())]
    rules = [{"order": n, "policy": r.policy, "organizer": r.organizer, "group": r.group}
             for n, r in enumerate(retention.rules, 1)]
    if as_json:
        print_json({"policies": policies, "rules": rules})
        return
    print_table("Retention policies", ["name", "days", "default", "description"],
                [[p["name"], p["days"], "yes" if p["default"] else "", p["description"]]
                 for p in policies])
    if rules:
        print_table("Rules (first match wins)", ["#", "policy", "organizer", "group"],
                    [[r["order"], r["policy"], r["organizer"], r["group"]] for r in rules])
