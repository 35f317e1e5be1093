"""A Microsoft Graph + sign-in emulator on loopback HTTPS, for the demo and the tests."""

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
    SignInUser,
    default_media_dir,
    default_scenario_path,
    load_scenario,
    scenario_from_dict,
)
from mg_emulator.server import EmulatorServer, run_emulator

__all__ = [
    "AttendanceRecord",
    "AttendanceReport",
    "Attendee",
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
    "SignInUser",
    "default_media_dir",
    "default_scenario_path",
    "load_scenario",
    "run_emulator",
    "scenario_from_dict",
]
