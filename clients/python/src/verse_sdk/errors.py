"""Exceptions of the Verse SDK.

Every failure is a :class:`VerseError`. A refusal by the daemon is an
:class:`ApiError` carrying what the daemon said (``error``), what to do about
it (``hint``) and, for a refused spec, where (``diagnostics``), so an agent
framework can show the daemon's own words instead of a bare status code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class VerseError(Exception):
    """Base class of every error this SDK raises."""


class TransportError(VerseError):
    """The daemon could not be reached, or the TLS handshake or connection failed."""


class ProtocolError(VerseError):
    """The daemon answered something this SDK does not understand."""


@dataclass(frozen=True)
class Diagnostic:
    """A problem in a spec, positioned in the file the daemon was given."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ApiError(VerseError):
    """The daemon refused a request.

    Attributes:
        status: the HTTP status (400 bad input, 401 no or bad token, 403 the token
            lacks the right, 404 no such thing, 409 conflicting state, 422 a
            refused spec or policy, 500 the daemon failed).
        error: the daemon's message.
        hint: what to do about it, when the daemon knows.
        diagnostics: positioned problems of a refused spec.
        body: the whole JSON error body.
    """

    def __init__(
        self,
        status: int,
        error: str,
        hint: str | None = None,
        diagnostics: list[Diagnostic] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.hint = hint
        self.diagnostics = diagnostics or []
        self.body = body or {}
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.error
        for d in self.diagnostics:
            if str(d) not in text:
                text += f"\n  {d}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class BadRequest(ApiError):
    """400: the request was malformed or named something invalid."""


class Unauthorized(ApiError):
    """401: no token, or a token the daemon does not accept (bad, expired, revoked)."""


class Forbidden(ApiError):
    """403: the token is valid but does not grant the right the route needs."""


class NotFound(ApiError):
    """404: no env, image or snapshot of that name."""


class Conflict(ApiError):
    """409: the env is not in a state that allows the request (e.g. not running)."""


class Rejected(ApiError):
    """422: the daemon understood the request and declined it: a spec with errors
    (see ``diagnostics``), an image that failed verification, a policy."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Rejected,
}


def api_error(status: int, body: Any, raw: bytes = b"") -> ApiError:
    """Builds the :class:`ApiError` subclass for ``status`` from an error body."""
    cls = _BY_STATUS.get(status, ApiError)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        diagnostics = [
            Diagnostic(
                file=str(d.get("file", "")),
                line=int(d.get("line", 0)),
                column=int(d.get("column", 0)),
                message=str(d.get("message", "")),
            )
            for d in body.get("diagnostics") or []
            if isinstance(d, dict)
        ]
        hint = body.get("hint")
        return cls(status, body["error"], hint if isinstance(hint, str) else None, diagnostics, body)
    text = raw.decode("utf-8", "replace").strip() or "(no body)"
    return cls(status, f"HTTP {status}: {text}")


class StreamError(VerseError):
    """An exec stream failed: the env reported an error, or the connection ended
    before the command's exit code arrived."""


class ExecTimeout(VerseError):
    """The command did not finish within ``timeout`` seconds; it was killed.

    ``stdout`` and ``stderr`` hold the bytes it wrote until then.
    """

    def __init__(self, command: list[str], timeout: float, stdout: bytes, stderr: bytes) -> None:
        self.command = command
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{command!r} did not finish within {timeout} s and was killed")


class CommandError(VerseError):
    """A command run with ``check=True`` exited with a non-zero code.

    ``result`` is the :class:`~verse_sdk.Result` it produced.
    """

    def __init__(self, command: list[str], result: Any) -> None:
        self.command = command
        self.result = result
        detail = result.stderr.strip() or result.stdout.strip()
        message = f"{command!r} exited with code {result.exit_code}"
        super().__init__(f"{message}: {detail}" if detail else message)


class FileError(VerseError):
    """Reading or writing a file inside an env failed.

    Attributes:
        env: the env's name.
        path: the path inside the env.
        reason: what the env's tools said (e.g. "No such file or directory").
    """

    def __init__(self, env: str, path: str, action: str, reason: str) -> None:
        self.env = env
        self.path = path
        self.reason = reason
        super().__init__(f"{action} {path} in env `{env}`: {reason}")
