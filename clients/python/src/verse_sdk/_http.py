"""A minimal HTTP/1.1 client for the daemon's TLS API, on the standard library.

Why not ``http.client`` or a third-party client: exec is an HTTP upgrade to a
framed byte stream (``Upgrade: verse-stream``), which those clients do not hand
over cleanly. One connection per request (``Connection: close``), as the
daemon's own Rust client does, keeps this small: no pooling, no keep-alive.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ProtocolError, TransportError, api_error

_MAX_HEAD = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """``https://HOST:PORT`` (a path, if any, is ignored); the API is TLS only."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError(
            f"{url!r}: the Verse TCP API speaks TLS only; give an https://HOST:PORT URL "
            "(the address of `verse daemon --listen`)"
        )
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host in the URL")
    try:
        port = parts.port or 443
    except ValueError as e:
        raise ValueError(f"{url!r}: {e}") from None
    return Endpoint(parts.hostname, port)


class _Reader:
    """Buffered reads from a socket; what is left after the response head is kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                out = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return out
            if len(self.buf) > _MAX_HEAD:
                raise ProtocolError("a response line longer than 64 KiB")
            if not self._fill():
                raise ProtocolError("the daemon closed the connection in the middle of a response")

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ProtocolError("the daemon closed the connection in the middle of a response")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def to_eof(self) -> bytes:
        while len(self.buf) <= _MAX_BODY and self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Upgraded:
    """The raw TLS stream after ``101 Switching Protocols``, with any bytes the
    daemon sent right behind its response head."""

    def __init__(self, sock: ssl.SSLSocket, leftover: bytes) -> None:
        self.sock = sock
        self.leftover = leftover

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Transport:
    """Speaks HTTP/1.1 over TLS to one daemon, with a bearer token."""

    def __init__(
        self,
        url: str,
        token: str,
        ca: str | os.PathLike[str] | None = None,
        timeout: float | None = 300.0,
    ) -> None:
        self.url = url
        self.endpoint = parse_url(url)
        if not token or any(c in token for c in "\r\n "):
            raise ValueError("token: give the token `verse token mint` printed (one line, no spaces)")
        self._token = token
        self.timeout = timeout
        try:
            self._context = ssl.create_default_context(cafile=os.fspath(ca) if ca is not None else None)
        except (OSError, ssl.SSLError) as e:
            raise TransportError(f"reading the CA certificate {ca}: {e}") from e

    def _connect(self) -> ssl.SSLSocket:
        host, port = self.endpoint.host, self.endpoint.port
        try:
            raw = socket.create_connection((host, port), timeout=self.timeout)
        except OSError as e:
            raise TransportError(
                f"connecting to the Verse daemon at {self.url}: {e.strerror or e} "
                "(is `verse daemon --listen` running there?)"
            ) from e
        try:
            return self._context.wrap_socket(raw, server_hostname=host)
        except ssl.SSLCertVerificationError as e:
            raw.close()
            raise TransportError(
                f"the daemon at {self.url} presented a certificate this client does not trust: "
                f"{e.verify_message}; pass ca= the daemon's certificate (its --tls-cert file)"
            ) from e
        except (OSError, ssl.SSLError) as e:
            raw.close()
            raise TransportError(f"TLS handshake with {self.url}: {e}") from e

    def _head(self, method: str, path: str, body: bytes | None, extra: dict[str, str]) -> bytes:
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.endpoint.host_header}",
            f"Authorization: Bearer {self._token}",
            "User-Agent: verse-sdk-python/0.1",
        ]
        if body is not None:
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        else:
            lines.append("Content-Length: 0")
        lines.extend(f"{k}: {v}" for k, v in extra.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    @staticmethod
    def _read_head(reader: _Reader) -> tuple[int, dict[str, str]]:
        status_line = reader.line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP response: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = reader.line()
            if not line:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise ProtocolError(f"bad response header {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    @staticmethod
    def _read_body(reader: _Reader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = bytearray()
            while True:
                size_text = reader.line().split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
                if size == 0:
                    while reader.line():
                        pass
                    return bytes(out)
                if len(out) + size > _MAX_BODY:
                    raise ProtocolError("a response body over 256 MiB")
                out += reader.exact(size)
                if reader.exact(2) != b"\r\n":
                    raise ProtocolError("a chunk not ended by CRLF")
        if "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise ProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
            if length > _MAX_BODY:
                raise ProtocolError("a response body over 256 MiB")
            return reader.exact(length)
        return reader.to_eof()

    def _exchange(
        self, method: str, path: str, body: bytes | None, extra: dict[str, str]
    ) -> tuple[ssl.SSLSocket, _Reader, int, dict[str, str]]:
        sock = self._connect()
        try:
            sock.sendall(self._head(method, path, body, extra))
            reader = _Reader(sock)
            status, headers = self._read_head(reader)
            return sock, reader, status, headers
        except (OSError, ProtocolError) as e:
            sock.close()
            if isinstance(e, ProtocolError):
                raise
            raise TransportError(f"{method} {path} on {self.url}: {e}") from e

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """Sends a JSON request; returns the decoded JSON answer.

        Raises:
            ApiError: (a subclass by status) when the daemon refuses.
            TransportError, ProtocolError.
        """
        body = None if payload is None else json.dumps(payload).encode()
        sock, reader, status, headers = self._exchange(
            method, path, body, {"Connection": "close", "Accept": "application/json"}
        )
        return self._decode(status, self._body_then_close(sock, reader, headers, f"{method} {path}"))

    def _body_then_close(
        self, sock: ssl.SSLSocket, reader: _Reader, headers: dict[str, str], what: str
    ) -> bytes:
        try:
            return self._read_body(reader, headers)
        except OSError as e:
            raise TransportError(f"{what} on {self.url}: {e}") from e
        finally:
            sock.close()

    @staticmethod
    def _decode(status: int, data: bytes) -> Any:
        try:
            value = json.loads(data) if data else None
        except ValueError:
            value = None
            if 200 <= status < 300:
                raise ProtocolError(f"the daemon answered {status} with a body that is not JSON") from None
        if 200 <= status < 300:
            return value
        raise api_error(status, value, data)

    def upgrade(self, path: str, payload: Any) -> Upgraded:
        """POSTs ``payload`` asking for ``Upgrade: verse-stream``; returns the stream.

        Raises:
            ApiError: when the daemon refuses instead of switching protocols.
        """
        body = json.dumps(payload).encode()
        sock, reader, status, headers = self._exchange(
            "POST", path, body, {"Connection": "upgrade", "Upgrade": "verse-stream"}
        )
        if status == 101:
            return Upgraded(sock, bytes(reader.buf))
        self._decode(status, self._body_then_close(sock, reader, headers, f"POST {path}"))
        raise ProtocolError(f"expected 101 Switching Protocols from POST {path}, got {status}")
