"""The keyring file's rules that need no cryptography: it exists, and only its owner can read it.

Checked when any command opens the context (`AppContext.open`), so a keyring that went missing
or was left readable by others stops every command at once — also those that never load the
keys — and again by the keyring itself each time it reads the file (`keyring_file`).
"""

from __future__ import annotations

import stat
from pathlib import Path

from meeting_governance.errors import KeyError_


def check_keyring_file(path: Path) -> None:
    """Raise `KeyError_` naming the fix when the keyring file is missing or readable by others."""
    if not path.is_file():
        raise KeyError_(f"keyring file {path} does not exist: run `meeting-governance init` "
                        "(or restore it from your key backup)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyError_(f"keyring file {path} is readable by others (mode {mode:o}); "
                        f"refusing to start: run `chmod 600 {path}` and check who read it")
