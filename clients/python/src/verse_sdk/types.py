"""What the daemon answers, as dataclasses (crates/verse-api/src/types.rs).

Each keeps the whole JSON object in ``raw``, so fields a newer daemon adds are
not lost to an older SDK.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Self, TypeVar

from .errors import ProtocolError

T = TypeVar("T")


def _from_json(cls: type[T], data: Any) -> T:
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    known = {f.name for f in fields(cls)} - {"raw"}  # type: ignore[arg-type]
    missing = [
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ProtocolError(f"{cls.__name__} without {', '.join(missing)}: {data!r:.200}")
    return cls(**{k: v for k, v in data.items() if k in known}, raw=data)  # type: ignore[call-arg]


@dataclass(frozen=True)
class Result:
    """What a command run by :meth:`Env.exec` produced.

    ``stdout`` and ``stderr`` are decoded as UTF-8 (undecodable bytes replaced);
    ``stdout_bytes`` and ``stderr_bytes`` are exactly what the command wrote.
    ``exit_code`` is the command's exit status, 128 + the signal's number when a
    signal ended it.
    """

    stdout: str
    stderr: str
    exit_code: int
    stdout_bytes: bytes = field(default=b"", repr=False)
    stderr_bytes: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        """Whether the command exited with 0."""
        return self.exit_code == 0


class _FromJson:
    @classmethod
    def from_json(cls, data: Any) -> Self:
        """Reads the daemon's JSON object; unknown fields are kept in ``raw`` only."""
        return _from_json(cls, data)


@dataclass(frozen=True)
class EnvInfo(_FromJson):
    """An env as ``verse ls --json`` shows it (``GET /v1/envs/NAME``)."""

    name: str
    state: str
    """created, running, stopped, failed, paused or hibernated."""
    backend: str
    image: str
    origin: str
    """"spec" (declared; what :meth:`Verse.create` makes) or "run" (``verse run``)."""
    ephemeral: bool = False
    cpu: float | None = None
    """Declared cpu limit in cores."""
    memory: int | None = None
    """Declared memory limit in bytes."""
    pids: int | None = None
    pid: int | None = None
    """Host pid of the env's PID 1 while running."""
    started_at: int | None = None
    uptime_secs: int | None = None
    exit_code: int | None = None
    error: str | None = None
    """Why the env failed, when it did."""
    cpu_usage_ns: int | None = None
    memory_bytes: int | None = None
    health: str | None = None
    note: str | None = None
    network: str | None = None
    network_detail: str | None = None
    host_id_base: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Snapshot(_FromJson):
    """A point-in-time copy of an env's writable layer (``POST /v1/envs/NAME/snapshots``)."""

    id: str
    """Short id, unique per env (s1, s2, ...): what :meth:`Env.restore` takes."""
    env: str
    root: str
    """Layer root hash in the store."""
    size: int
    files: int
    new_bytes: int
    created_at: int
    origin: str
    """"user" or "schedule"."""
    frozen_ms: int = 0
    """How long the env was frozen while it was taken."""
    label: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class DaemonInfo(_FromJson):
    """``GET /v1/info``."""

    version: str
    root: str
    pid: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
