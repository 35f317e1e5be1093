"""The exit codes of every command, defined once (README "Exit codes" lists them).

Scripts and systemd act on these: 1 means "it ran, but look at the items that failed", 2 "the
command line or the configuration is wrong, fix it before trying again", 3 "this host cannot
do the work yet (model, paths, keyring)", 75 "try again later" (EX_TEMPFAIL, which cron wrappers
and systemd's `RestartPreventExitStatus` understand).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1          # the command ran, but some items (recordings, transcripts) failed
    USAGE = 2           # a bad argument, an unknown or ambiguous id, a bad configuration
    PREFLIGHT = 3       # the model, a configured path or the keyring is not usable
    TEMPFAIL = 75       # another process holds the lock; nothing done, try again later
    INTERRUPTED = 130   # Ctrl-C


__all__ = ["ExitCode"]
