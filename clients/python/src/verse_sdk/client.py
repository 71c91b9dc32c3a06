"""The SDK's surface: :class:`Verse` (one daemon), :class:`Env` (one env in it) and
:class:`Files` (files inside an env).

How :meth:`Verse.create` makes an env: it adds one ``[env.NAME]`` table to the
daemon's active spec through ``POST /v1/compose/add``, with a command that idles
(unless given another). That route takes every spec key (cpu, memory, pids, disk,
network, env, volumes, ...), refuses to touch any env already declared, starts the
new env and returns once it runs; the env then lives until :meth:`Env.destroy`,
and takes any number of :meth:`Env.exec` calls. (``POST /v1/run`` would make a
one-off env tied to one attached command, without cpu/memory/pids limits.)

How files move: the API has no route that reads or writes a file of an env, so
:class:`Files` runs ``cat`` in the env over the exec stream (the bytes travel as
stdin and stdout frames). The env needs ``/bin/sh``, ``cat``, ``mv`` and ``rm``
(busybox and Debian images have them); files are read and written as the env's
user.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import ssl
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from . import _toml
from ._http import Transport, Upgraded
from .errors import (
    CommandError,
    ExecTimeout,
    FileError,
    NotFound,
    ProtocolError,
    StreamError,
    VerseError,
)
from .frames import MAX_PAYLOAD, Decoder, Frame, FrameError, Kind, encode_data
from .types import DaemonInfo, EnvInfo, Result, Snapshot

#: What a created env runs when no ``command`` is given: a shell that waits, and
#: ends at once when the env is stopped (the daemon's own idle command).
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]

#: How long a killed command has to report its exit code after a timeout.
_KILL_GRACE = 10.0


class EnvFailed(VerseError):
    """A created env did not reach "running"; it was removed again.

    ``name`` is the env's name, ``reason`` what the daemon reported.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"env `{name}` did not start: {reason}")


def _env_path(name: str, *rest: str) -> str:
    path = "/v1/envs/" + quote(name, safe="")
    for part in rest:
        path += "/" + quote(part, safe="")
    return path


class Verse:
    """A Verse daemon, reached over its TLS API with a capability token.

    Args:
        url: ``https://HOST:PORT``, the address ``verse daemon --listen`` serves.
        token: a biscuit token from ``verse token mint`` on the daemon's host. To
            create, use and destroy envs it needs
            ``env:*:read,write,exec spec:*:write``.
        ca: the PEM certificate (or CA bundle) to trust for the daemon, usually its
            ``--tls-cert`` file; the system's trust store when None.
        timeout: seconds to wait for the daemon on any one request (creating an
            env includes starting it). ``Env.exec`` has its own ``timeout``.

    Example::

        verse = Verse("https://127.0.0.1:7443", token, ca="verse.crt")
        with verse.create("busybox", cpu=1, memory="256MiB") as env:
            print(env.exec("echo hello").stdout)
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca: str | os.PathLike[str] | None = None,
        timeout: float | None = 300.0,
    ) -> None:
        self._http = Transport(url, token, ca, timeout)

    @property
    def url(self) -> str:
        return self._http.url

    def info(self) -> DaemonInfo:
        """The daemon's version, root and pid (needs ``daemon:*:read``)."""
        return DaemonInfo.from_json(self._http.request("GET", "/v1/info"))

    def envs(self) -> list[EnvInfo]:
        """The envs the token may read."""
        answer = self._http.request("GET", "/v1/envs")
        if not isinstance(answer, list):
            raise ProtocolError("GET /v1/envs did not answer a list")
        return [EnvInfo.from_json(e) for e in answer]

    def env(self, name: str) -> Env:
        """A handle on an existing env (raises :class:`NotFound` if there is none)."""
        env = Env(self, name)
        env.info()
        return env

    def create(
        self,
        image: str,
        *,
        name: str | None = None,
        cpu: float | None = None,
        memory: int | str | None = None,
        pids: int | None = None,
        disk: int | str | None = None,
        network: str | Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | str | None = None,
        backend: str | None = None,
        **spec: Any,
    ) -> Env:
        """Creates and starts an env from ``image``; returns once it runs.

        Args:
            image: an image in the daemon's store (``verse image ls``).
            name: the env's name (a-z, 0-9, '-'); default ``sdk-`` and 8 random hex digits.
            cpu: cores, fractions allowed.
            memory: bytes, or a size such as ``"512MiB"``.
            pids: most processes at once.
            disk: bytes or a size: the env's writes get a filesystem of that size.
            network: ``"none"`` (default), ``"nat"``, ``{"allow": ["HOST:PORT", ...]}``,
                ``{"proxy": "socks5://..."}``.
            env: environment variables of every command in the env.
            command: what the env runs (argv, or a string run by ``/bin/sh -c``);
                default :data:`IDLE_COMMAND`, a shell that waits.
            backend: ``"container"`` (default), ``"vm"`` or ``"gvisor"``.
            **spec: any other key of ``[env.NAME]`` (see docs/spec.md), e.g.
                ``workdir="/work"``, ``user="1000"``, ``volumes={"/data": "/srv/d"}``.

        The env is declared in the daemon's active spec (a new generation): a later
        ``verse apply`` of a spec file that does not name it removes it, as apply
        declares the whole host.

        Raises:
            Rejected: the daemon refused the env's table (an unknown image or key, a
                bad value); its ``diagnostics`` say which key, and where.
            Conflict: an env of that name exists.
            EnvFailed: the env was created but did not start (it is removed again).
        """
        name = name or f"sdk-{secrets.token_hex(4)}"
        fields: dict[str, Any] = {
            "image": image,
            "backend": backend,
            "cpu": cpu,
            "memory": memory,
            "pids": pids,
            "disk": disk,
            "network": network,
            "env": dict(env) if env is not None else None,
            "command": IDLE_COMMAND if command is None else command,
        }
        for key, value in spec.items():
            if key in fields:
                raise TypeError(f"create() got {key!r} twice")
            fields[key] = value
        fragment = _toml.env_table(name, fields)
        report = self._http.request("POST", "/v1/compose/add", {"toml": fragment, "dry_run": False})
        failures = ((report or {}).get("report") or {}).get("failures") or []
        mine = [f for f in failures if isinstance(f, dict) and f.get("env") == name]
        handle = Env(self, name)
        if mine:
            reason = "; ".join(str(f.get("detail", "")) for f in mine) or "unknown"
            handle.destroy()
            raise EnvFailed(name, reason)
        return handle


class Env:
    """One env of a daemon.

    Used as a context manager, it is destroyed when the block ends, however it ends::

        with verse.create("busybox") as env:
            env.exec("...")
    """

    def __init__(self, verse: Verse, name: str) -> None:
        self.verse = verse
        self.name = name
        self.files = Files(self)
        """Files inside the env: :meth:`Files.write`, :meth:`Files.read`."""

    def __repr__(self) -> str:
        return f"Env({self.name!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    @property
    def _http(self) -> Transport:
        return self.verse._http

    def _act(self, action: str) -> EnvInfo:
        """``POST /v1/envs/NAME/ACTION``, answered with the env's new state."""
        return EnvInfo.from_json(self._http.request("POST", _env_path(self.name, action)))

    def info(self) -> EnvInfo:
        """The env's state, limits and measured use."""
        return EnvInfo.from_json(self._http.request("GET", _env_path(self.name)))

    def exec(
        self,
        cmd: str | Sequence[str],
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        """Runs a command in the env and waits for it.

        Args:
            cmd: a string, run by ``/bin/sh -c``, or an argv list run as it is.
            stdin: bytes (or text, sent as UTF-8) for the command's stdin, which then
                ends; without it the command's stdin is empty.
            env: extra environment variables for this command.
            cwd: its working directory (default: the env's workdir).
            timeout: seconds; when passed, the command is killed (SIGKILL) and
                :class:`ExecTimeout` raised with what it wrote so far.
            check: raise :class:`CommandError` when the exit code is not 0.

        Raises:
            NotFound: no such env. Conflict: it is not running, or paused.
            StreamError: the stream broke before the exit code arrived.
        """
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        if not argv:
            raise ValueError("exec: no command given")
        data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
        request = {
            "argv": argv,
            "env": [[k, v] for k, v in (env or {}).items()],
            "tty": False,
            "cwd": cwd,
            "rows": 0,
            "cols": 0,
        }
        stream = self._http.upgrade(_env_path(self.name, "exec"), request)
        try:
            code, out, err = _pump(stream, data, timeout, argv)
        finally:
            stream.close()
        result = Result(
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            exit_code=code,
            stdout_bytes=out,
            stderr_bytes=err,
        )
        if check and code != 0:
            raise CommandError(argv, result)
        return result

    def snapshot(self, label: str | None = None, *, volumes: bool = False) -> Snapshot:
        """Copies the env's writable layer into the store (the env is frozen meanwhile).

        ``volumes=True`` also copies its read-write volumes.
        """
        answer = self._http.request(
            "POST", _env_path(self.name, "snapshots"), {"label": label, "volumes": volumes}
        )
        return Snapshot.from_json(answer)

    def snapshots(self) -> list[Snapshot]:
        """The env's snapshots, oldest first."""
        answer = self._http.request("GET", _env_path(self.name, "snapshots"))
        if not isinstance(answer, list):
            raise ProtocolError("the snapshot list is not a list")
        return [Snapshot.from_json(s) for s in answer]

    def restore(self, snapshot: Snapshot | str) -> EnvInfo:
        """Puts the env's writable layer back as it was in ``snapshot`` (restarts it)."""
        ident = snapshot.id if isinstance(snapshot, Snapshot) else snapshot
        return EnvInfo.from_json(
            self._http.request("POST", _env_path(self.name, "restore"), {"snapshot": ident})
        )

    def hibernate(self) -> EnvInfo:
        """Saves the env's processes to disk and frees its memory (CRIU for
        containers); :meth:`resume` brings them back where they were."""
        return self._act("hibernate")

    def resume(self) -> EnvInfo:
        """Brings a hibernated env's processes back."""
        return self._act("resume")

    def pause(self) -> EnvInfo:
        """Freezes every process of the env (they keep their memory)."""
        return self._act("pause")

    def unpause(self) -> EnvInfo:
        """Lets a paused env run again."""
        return self._act("unpause")

    def stop(self) -> EnvInfo:
        """Stops the env, keeping what it wrote (``verse down``)."""
        return self._act("down")

    def start(self) -> EnvInfo:
        """Starts a stopped env again (``verse up``)."""
        return self._act("up")

    def destroy(self) -> bool:
        """Stops the env and deletes it, its writes and its snapshots.

        Returns False when there was no such env any more (destroying twice is not
        an error). The env's ``[env.NAME]`` stays in the active generation's spec
        until the next ``verse apply``; its name is not reused by :meth:`Verse.create`.
        """
        try:
            self._http.request("DELETE", _env_path(self.name))
        except NotFound:
            return False
        return True


class Files:
    """Files inside an env, moved over the exec stream (see the module's docs)."""

    # $1 path, $2 "1" to create parent directories, $3 octal mode or "". The bytes
    # go to a temporary file beside the target, renamed over it once complete: a
    # reader never sees half a file, and a failed write leaves the old one.
    _WRITE = (
        'set -e; p=$1; t="$p.verse-sdk.$$"; trap \'rm -f "$t"\' EXIT; '
        'if [ "$2" = 1 ]; then mkdir -p "$(dirname "$p")"; fi; '
        'cat > "$t"; if [ -n "$3" ]; then chmod "$3" "$t"; fi; mv -f "$t" "$p"'
    )

    def __init__(self, env: Env) -> None:
        self._env = env

    @staticmethod
    def _check(path: str) -> str:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"{path!r}: give an absolute path inside the env")
        if "\0" in path:
            raise ValueError(f"{path!r}: a path cannot hold a NUL byte")
        return path

    def write(
        self,
        path: str,
        data: bytes | str,
        *,
        mode: int | None = None,
        parents: bool = False,
    ) -> None:
        """Writes ``data`` (text is written as UTF-8) to ``path``, replacing it whole.

        Args:
            mode: permission bits, e.g. ``0o755``; default from the env's umask.
            parents: create missing parent directories.

        Raises:
            FileError: the env refused (no such directory, permission denied, full).
        """
        self._check(path)
        blob = data.encode() if isinstance(data, str) else bytes(data)
        argv = ["/bin/sh", "-c", self._WRITE, "verse-sdk-write", path, "1" if parents else "0"]
        argv.append("" if mode is None else format(mode, "o"))
        result = self._env.exec(argv, stdin=blob)
        if result.exit_code != 0:
            raise FileError(self._env.name, path, "writing", _reason(result))

    def read(self, path: str) -> bytes:
        """The bytes of the file at ``path``.

        Raises:
            FileError: no such file, a directory, permission denied.
        """
        self._check(path)
        result = self._env.exec(["cat", path])
        if result.exit_code != 0:
            raise FileError(self._env.name, path, "reading", _reason(result))
        return result.stdout_bytes

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        """The file at ``path``, decoded."""
        return self.read(path).decode(encoding)


def _reason(result: Result) -> str:
    text = result.stderr.strip() or result.stdout.strip()
    return text or f"exit code {result.exit_code}"


def _pump(stream: Upgraded, stdin: bytes, timeout: float | None, argv: list[str]) -> tuple[int, bytes, bytes]:
    """Sends ``stdin`` (then end of file) and collects output until the Exit frame.

    One thread, one non-blocking TLS socket, ``select``: reading and writing
    interleave, so a command that writes while it reads never deadlocks against
    its input, and no two threads touch the TLS connection.
    """
    sock = stream.sock
    sock.setblocking(False)
    decoder = Decoder()
    decoder.feed(stream.leftover)
    outgoing = bytearray(encode_data(Kind.STDIN, stdin))
    outgoing += Frame(Kind.STDIN_EOF).encode()
    stdout, stderr = bytearray(), bytearray()
    deadline = None if timeout is None else time.monotonic() + timeout
    killed = False
    while True:
        try:
            frame = decoder.next_frame()
        except FrameError as e:
            raise ProtocolError(f"exec stream: {e}") from e
        if frame is not None:
            if frame.kind == Kind.STDOUT:
                stdout += frame.payload
            elif frame.kind == Kind.STDERR:
                stderr += frame.payload
            elif frame.kind == Kind.EXIT:
                code = frame.as_i32()
                if code is None:
                    raise ProtocolError(f"an Exit frame of {len(frame.payload)} bytes")
                if killed:
                    raise ExecTimeout(argv, timeout or 0.0, bytes(stdout), bytes(stderr))
                return code, bytes(stdout), bytes(stderr)
            elif frame.kind == Kind.ERROR:
                raise StreamError(frame.payload.decode("utf-8", "replace"))
            continue
        wait: float | None = None
        if deadline is not None:
            now = time.monotonic()
            if now >= deadline:
                if killed:
                    raise ExecTimeout(argv, timeout or 0.0, bytes(stdout), bytes(stderr))
                killed = True
                outgoing += Frame.signal(signal.SIGKILL).encode()
                deadline = now + _KILL_GRACE
            wait = max(0.0, deadline - now)
        if sock.pending():
            readable, writable = True, False
        else:
            r, w, _ = select.select([sock], [sock] if outgoing else [], [], wait)
            readable, writable = bool(r), bool(w)
        if readable:
            try:
                data = sock.recv(MAX_PAYLOAD + 5)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                data = None
            except OSError as e:
                raise StreamError(f"exec stream of {argv!r}: {e}") from e
            if data == b"":
                raise StreamError(f"the connection closed before {argv!r} reported its exit code")
            if data:
                decoder.feed(data)
        if writable and outgoing:
            try:
                sent = sock.send(outgoing[:MAX_PAYLOAD])
                del outgoing[:sent]
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except OSError:
                # The command ended (or closed its stdin) while input was still
                # going: what it wrote and its exit code still come back.
                outgoing.clear()
