"""One exception root, a few meaningful subclasses; the CLI turns each into one clear line.

Every message names the problem and, where there is one, the fix.
"""

from __future__ import annotations

from meeting_governance.exitcodes import ExitCode


class GovernanceError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code: int = ExitCode.FAILED


class ConfigError(GovernanceError):
    """A configuration key is missing, unknown or has a value that is not allowed."""

    exit_code = ExitCode.USAGE


class UsageError(GovernanceError):
    """The command line asks for something that cannot be: an unknown or ambiguous id."""

    exit_code = ExitCode.USAGE


class PreflightError(GovernanceError):
    """A command's start-up check failed: the model, a configured path or the keyring is not
    usable. Nothing was claimed or downloaded; the message names the fix."""

    exit_code = ExitCode.PREFLIGHT


class DatabaseError(GovernanceError):
    """The database cannot be opened, is not migrated, or is damaged."""


class KeyError_(GovernanceError):
    """Key material is missing, unreadable, exposed, or is the wrong key."""


class IntegrityError(GovernanceError):
    """Stored data failed an authenticity check: tampered, moved or decrypted with the wrong key."""


class AuditChainBroken(IntegrityError):
    """`audit verify` found an entry that was changed, removed or reordered."""


class ShreddedError(GovernanceError):
    """The data key of this record was destroyed: its contents cannot be recovered by design."""


class NotFoundError(GovernanceError):
    """The thing asked for does not exist."""

    exit_code = ExitCode.USAGE


class InputError(GovernanceError):
    """User input (a CSV row, an e-mail address, a join link) is not valid."""

    exit_code = ExitCode.USAGE


class GraphError(GovernanceError):
    """Microsoft Graph (or the sign-in authority) answered with an error or could not be reached.

    `code` and `request_id` come from Graph's error body when it has one; `retryable` says
    whether the same call may succeed later (throttling, 5xx, a cut connection, a bad body).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retryable = retryable


class TranscriptionError(GovernanceError):
    """The media could not be decoded or transcribed (corrupt, empty, not audio)."""


class LockedError(GovernanceError):
    """Another process holds the lock this command needs (a second daemon, an overlapping purge)."""

    exit_code = ExitCode.TEMPFAIL


class PurgeIncomplete(GovernanceError):
    """A purge ran but did not finish everything (a transcript failed, compaction was busy)."""
