"""`meeting-governance-emulator` (or `python -m mg_emulator`): the emulator on its own."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mg_emulator.scenario import ScenarioError, default_media_dir, default_scenario_path
from mg_emulator.server import run_emulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="meeting-governance-emulator",
        description="Microsoft Graph + sign-in emulator on loopback HTTPS (Ctrl-C stops it).")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--scenario", type=Path, default=None,
                        help="scenario TOML (default: the shipped demo)")
    parser.add_argument("--media-dir", type=Path, default=None,
                        help="where recordings' media files are (default: the shipped clips)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="CA bundle and keys (default: $MG_HOME/emulator)")
    args = parser.parse_args(argv)
    home = Path(os.environ.get("MG_HOME") or Path.home() / ".local/share/meeting-governance")
    try:
        run_emulator(args.port, args.scenario or default_scenario_path(),
                     args.media_dir or default_media_dir(), args.state_dir or home / "emulator")
    except ScenarioError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


if __name__ == "__main__":
    main()
