"""A Microsoft Graph + sign-in emulator on loopback HTTPS, for Meeting Governance's demo and
tests: its own distribution (`meeting-governance-emulator`), never part of the product."""

from mg_emulator.faults import Faults, LoggedRequest, RequestLog
from mg_emulator.scenario import (
    AttendanceRecord,
    AttendanceReport,
    Attendee,
    Group,
    Meeting,
    Organizer,
    Person,
    Recording,
    Scenario,
    ScenarioError,
    SignInUser,
    default_media_dir,
    default_scenario_path,
    load_scenario,
    scenario_from_dict,
)
from mg_emulator.server import EmulatorServer, run_emulator
from mg_emulator.tls import EmulatorKeys, TlsFiles, make_keys

__all__ = [
    "AttendanceRecord",
    "AttendanceReport",
    "Attendee",
    "EmulatorKeys",
    "EmulatorServer",
    "Faults",
    "Group",
    "LoggedRequest",
    "Meeting",
    "Organizer",
    "Person",
    "Recording",
    "RequestLog",
    "Scenario",
    "ScenarioError",
    "SignInUser",
    "TlsFiles",
    "default_media_dir",
    "default_scenario_path",
    "load_scenario",
    "make_keys",
    "run_emulator",
    "scenario_from_dict",
]
