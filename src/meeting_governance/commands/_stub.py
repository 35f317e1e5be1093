"""Commands of the contract that this version does not implement yet: say so, exit non-zero."""

from __future__ import annotations

from typing import NoReturn

from meeting_governance.errors import NotBuiltError


def not_built(command: str) -> NoReturn:
    raise NotBuiltError(f"`meeting-governance {command}` is not built in this version yet; "
                        "see the project's open issues")
