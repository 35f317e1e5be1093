"""`meeting-governance demo`: the whole product on a fresh machine, with no tenant.

Starts the Graph emulator (loopback HTTPS, its own throwaway CA) with sample meetings whose
media are short real-speech clips shipped with it, registers the sample opt-outs through the
CSV import, runs discovery and the pipeline once, and prints what happened and why. It works in
its own data directory ($MG_HOME/demo) with its own configuration pointing at the emulator, so
it never touches a real installation. The emulator is its own distribution
(`meeting-governance-emulator`, the `demo` extra), not part of the product.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from sqlmodel import col, select

from meeting_governance import formats
from meeting_governance.cliutil import BarReporter
from meeting_governance.config import GraphSettings, Settings, load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.errors import ConfigError
from meeting_governance.graph import GraphClient
from meeting_governance.logs import configure_logging
from meeting_governance.models import Recording, Transcript
from meeting_governance.optout_identities import refresh
from meeting_governance.optouts import import_csv
from meeting_governance.pipeline import Services, poll, process
from meeting_governance.store import read_content

if TYPE_CHECKING:
    from mg_emulator import EmulatorServer

INSTALL_DEMO = "install the demo extra: pip install -e '.[demo]' (in a checkout of the repository)"


def require_emulator() -> None:
    """The demo and `meeting-governance emulator` need the emulator, which the product wheel
    does not carry: say how to get it instead of a traceback."""
    try:
        import mg_emulator  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "mg_emulator":
            raise
        raise ConfigError(f"the Microsoft Graph emulator is not installed (it is not part of "
                          f"the product); {INSTALL_DEMO}") from None


# What each sample meeting of the emulator's demo scenario (mg_emulator/scenarios/demo.toml) is
# there to show, by its (made-up) subject: the summary says it beside the outcome, so a failure
# on purpose does not read as a bug.
SHOWS = {
    "Weekly sync": "internal, everyone known: transcribed",
    "Customer call": "a guest and an anonymous visitor: not everyone known, so not transcribed",
    "Planning": "no attendance report: who was there is unknown, so not transcribed",
    "Budget review": "someone dialled in by phone: unknown, so not transcribed",
    "Sprint retrospective": "a person who opted out (under an alias): blocked, never downloaded",
    "Vendor demo": "a B2B guest the directory knows: transcribed",
    "All hands": "a corrupt upload, on purpose: fails clearly and is retried later",
    "Team stand-up": "a recurring meeting: only this occurrence's attendance counts",
}


@dataclass(frozen=True)
class DemoResult:
    home: Path
    recordings: dict[str, int]
    transcripts: tuple[str, ...]


def _demo_config(home: Path, emulator: EmulatorServer) -> str:
    organizers = ", ".join(f'"{o.id}"' for o in emulator.scenario.organizers)
    return (
        "# Written by `meeting-governance demo`: the emulator's address changes every run.\n"
        "[graph]\n"
        'cloud = "custom"  # the built-in emulator: no Microsoft cloud preset applies\n'
        f'tenant_id = "{emulator.tenant_id}"\n'
        f'client_id = "{emulator.client_id}"\n'
        f'authority_host = "{emulator.authority_host}"\n'
        f'base_url = "{emulator.base_url}"\n'
        f'ca_bundle = "{emulator.ca_bundle}"\n'
        "# The emulator is on this host: never through a proxy set in the environment.\n"
        'no_proxy = ["127.0.0.1", "localhost"]\n'
        f"organizers = [{organizers}]\n"
        "max_retries = 3\n"
        "backoff_base_s = 0.1\n"
        "[gate]\n"
        "participants_deadline_hours = 0.001  # the sample meetings are weeks old\n"
        "[daemon]\n"
        "process_batch = 20\n"
    )


def run_demo(base: Settings, *, keep: bool = False, console: Console | None = None) -> DemoResult:
    """Run the demo end to end and print a summary; returns what it did (for tests)."""
    require_emulator()  # before anything is written
    from mg_emulator import EmulatorServer, default_media_dir, default_scenario_path, load_scenario

    console = console or Console()
    from meeting_governance.context import private_dir
    from meeting_governance.preflight import check_model

    check_model(base.transcription)  # a missing model stops the demo before anything starts
    home = base.home / "demo"
    if home.exists() and not keep:
        shutil.rmtree(home)
    private_dir(base.home)  # 0700, not the umask's 0755
    private_dir(home)
    scenario = load_scenario(default_scenario_path("demo"))
    media_dir = default_media_dir()
    emulator = EmulatorServer(scenario, media_dir=media_dir, state_dir=home / "emulator")
    with emulator:
        console.print(f"Graph emulator listening on {emulator.authority_host} "
                      f"(sample tenant, {len(scenario.organizers)} organisers)")
        config_file = home / "config.toml"
        config_file.write_text(_demo_config(home, emulator), encoding="utf-8")
        config_file.chmod(0o600)
        # The client secret stays in memory: the config file written above never holds it.
        graph = GraphSettings(**emulator.client_config(max_retries=3, backoff_base_s=0.1)
                              ).model_dump()
        settings = load_settings(config_file, graph=graph)
        # MG_HOME in the environment would beat a keyword: pin the demo's own directory.
        settings = settings.model_copy(update={"home": home})
        initialise(settings, config_file)
        configure_logging(settings.logging.level, settings.log_file)
        app = AppContext.open(settings)
        app.actor = "demo"
        try:
            return _run(app, emulator, console)
        finally:
            app.close()


def _run(app: AppContext, emulator: EmulatorServer, console: Console) -> DemoResult:
    from mg_emulator import default_scenario_path

    csv_text = (default_scenario_path("demo").parent / "demo-optouts.csv").read_text(encoding="utf-8")
    with app.session() as session:
        added = import_csv(app, session, csv_text, actor="demo")
    console.print(f"Registered {len(added)} sample opt-outs (CSV import).")
    with GraphClient.from_settings(app.settings.graph) as graph:
        resolved = refresh(app, graph)
        console.print(f"The directory resolved them to every address of each person "
                      f"({resolved.identifiers_added} identifiers, blind-indexed; "
                      f"{resolved.not_found} not found in the directory).")
        report = poll(app, graph)
    console.print(f"Discovered {report.new} recordings from Microsoft Graph (emulated).")
    services = Services.from_app(app)
    console.print("Gate, download and transcribe locally with Whisper (about 15 s on 2 cores)…")
    try:
        # A bar per download and transcription on a terminal; nothing extra in a pipe.
        with BarReporter(console=console) as reporter:
            services.reporter = reporter
            process(app, services, limit=100, on_item=reporter.finished)
    finally:
        services.close()
    return _summary(app, emulator, console)


def _program() -> str:
    """How the user started us, so the commands printed work as they are (a venv's bin is
    often not on PATH)."""
    argv0 = sys.argv[0]
    if Path(argv0).name == "meeting-governance":
        return argv0
    if argv0.endswith("__main__.py"):
        return f"{sys.executable} -m meeting_governance"
    return "meeting-governance"


def _summary(app: AppContext, emulator: EmulatorServer, console: Console) -> DemoResult:
    table = Table(title="Demo: what happened to each sample recording")
    table.add_column("#")
    table.add_column("sample meeting: what it shows", max_width=48)
    table.add_column("state")
    table.add_column("why", max_width=60)
    table.add_column("transcript (first words)", max_width=50)
    counts: dict[str, int] = {}
    transcripts: list[str] = []
    subjects = {m.id: m.subject for m in emulator.scenario.meetings}
    content_requests = [r for r in emulator.requests.all() if r.path.endswith("/content")]
    with app.session() as session:
        recs = session.exec(select(Recording).order_by(col(Recording.id))).all()
        for rec in recs:
            counts[rec.state] = counts.get(rec.state, 0) + 1
            row = session.exec(select(Transcript).where(Transcript.recording_id == rec.id)).first()
            words = ""
            if row is not None:
                transcripts.append(row.id)
                content = read_content(app, session, row)
                text = formats.to_txt(formats.from_json(json.dumps(content)).segments)
                words = f"{row.id[:8]}…: " + " ".join(text.split()[:7]) + " …"
                app.audit(session, "transcript.read", target_type="transcript",
                          target_id=row.id, reason="demo summary")
            subject = subjects.get(rec.meeting_id, "")
            shows = f"{subject}: {SHOWS[subject]}" if subject in SHOWS else subject
            table.add_row(str(rec.id), shows, rec.state, rec.reason, words)
    console.print(table)
    console.print(f"Media downloads requested from Graph: {len(content_requests)} "
                  "(blocked recordings are never fetched).")
    console.print(f"Data directory: {app.settings.home} (transcripts encrypted in "
                  f"{app.settings.database_url.split('///')[-1]})", soft_wrap=True)
    program = f"MG_HOME={app.settings.home} {_program()}"

    def hint(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    hint("Next, try:")
    if transcripts:
        hint(f"  {program} transcript show {transcripts[0]} --reason demo"
             "    # decrypts; the access is audited")
        hint(f"  {program} transcript export {transcripts[0][:8]} --format vtt"
             "    # an id prefix is enough")
    hint(f"  {program} recordings list    # every recording, its state and transcript id")
    hint(f"  {program} users add me --role admin && {program} serve"
         "    # the opt-out web form")
    hint(f"  {program} purge --dry-run    # what retention would purge, changing nothing")
    hint(f"  {program} stats    # counts by month, small cells suppressed")
    hint(f"  {program} audit verify    # the hash-chained audit log is intact")
    return DemoResult(app.settings.home, counts, tuple(transcripts))
