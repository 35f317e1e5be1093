"""The README's first command, as a new user runs it: `meeting-governance demo`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scan_for

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_pipeline_and_explains_the_outcome(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env.update(MG_HOME=str(tmp_path / "mg"), HF_HUB_OFFLINE="1", COLUMNS="200")
    run = subprocess.run([sys.executable, "-m", "meeting_governance", "demo"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Registered 2 sample opt-outs" in out
    assert "The directory resolved them to every address of each person" in out
    assert "Discovered 8 recordings" in out
    assert out.count("│ stored ") == 2
    assert "opted out (1 opt-out)" in out  # Dana: by alias, shown to Teams by object id only
    assert "participants unknown" in out
    assert "only other occurrences" in out  # the stand-up recorded on a day without a report
    assert "TranscriptionError" in out  # the corrupt upload fails clearly
    assert "kittens" in out.lower()  # the spoken words of sample-1
    assert "Media downloads requested from Graph: 3" in out
    assert "transcript show" in out
    # Each row says what its sample meeting is there to show: the corrupt upload is on purpose.
    assert "All hands: a corrupt upload, on purpose" in out
    assert "Sprint retrospective: a person who opted out" in out
    # And the summary ends with the next things to try: the form, a purge dry run, stats, audit.
    for step in (" serve", "purge --dry-run", " stats", "audit verify"):
        assert step in out, step
    # Piped, there is no progress bar or spinner on either stream.
    assert "\r" not in out and "\x1b[" not in run.stderr
    demo_home = tmp_path / "mg" / "demo"
    assert (demo_home / "meeting-governance.db").is_file()
    # The demo's own data dir holds nothing in clear (its log included).
    needles = [b"kittens", b"asthma", b"dana.optout@contoso.example", b"Weekly sync",
               b"Sprint retrospective", b"Casey Member"]
    assert scan_for(demo_home, needles) == []

    # What the summary tells the user to run next works.
    show = next(line.strip() for line in out.splitlines() if "transcript show" in line)
    transcript_id = show.split("transcript show ")[1].split()[0]
    env["MG_HOME"] = str(demo_home)
    shown = subprocess.run([sys.executable, "-m", "meeting_governance", "transcript", "export",
                            transcript_id, "--format", "vtt"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("WEBVTT")
    verify = subprocess.run([sys.executable, "-m", "meeting_governance", "audit", "verify"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "intact" in verify.stdout
