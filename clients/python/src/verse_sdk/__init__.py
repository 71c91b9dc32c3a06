"""Verse SDK: create isolated envs on a Verse daemon, run commands in them and
move files in and out, over the daemon's TLS API with a capability token.

    from verse_sdk import Verse

    verse = Verse("https://127.0.0.1:7443", token, ca="verse.crt")
    with verse.create("busybox", cpu=1, memory="256MiB") as env:
        env.files.write("/tmp/task.py", code)
        result = env.exec("python3 /tmp/task.py", timeout=60)
        print(result.exit_code, result.stdout, result.stderr)

See docs/sdk.md in the Verse repository.
"""

from .client import IDLE_COMMAND, Env, EnvFailed, Files, Verse
from .errors import (
    ApiError,
    BadRequest,
    CommandError,
    Conflict,
    Diagnostic,
    ExecTimeout,
    FileError,
    Forbidden,
    NotFound,
    ProtocolError,
    Rejected,
    StreamError,
    TransportError,
    Unauthorized,
    VerseError,
)
from .types import DaemonInfo, EnvInfo, Result, Snapshot

__version__ = "0.1.0"

__all__ = [
    "IDLE_COMMAND",
    "ApiError",
    "BadRequest",
    "CommandError",
    "Conflict",
    "DaemonInfo",
    "Diagnostic",
    "Env",
    "EnvFailed",
    "EnvInfo",
    "ExecTimeout",
    "FileError",
    "Files",
    "Forbidden",
    "NotFound",
    "ProtocolError",
    "Rejected",
    "Result",
    "Snapshot",
    "StreamError",
    "TransportError",
    "Unauthorized",
    "Verse",
    "VerseError",
]
