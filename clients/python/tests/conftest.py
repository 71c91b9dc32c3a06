"""A real Verse daemon for the SDK's tests: a temporary VERSE_ROOT, the TLS API on a
free loopback port with a self-signed certificate, the busybox image that
scripts/busybox-rootfs.sh builds, and a token minted by `verse token mint` with
only the rights the SDK needs. Like the Rust end-to-end harness
(crates/verse-cli/tests/common/mod.rs): tests that cannot run here are skipped
loudly, and fail under CI=true.

VERSE_BIN names the verse binary (default: target/debug/verse of this repository).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

#: What an agent framework's token needs to create, use and destroy envs.
SDK_RIGHTS = "env:*:read,write,exec spec:*:write daemon:*:read"


def cannot_run(reason: str) -> None:
    """Skips loudly, or fails under CI=true, as common::can_run does."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and this host cannot run the SDK tests: {reason}", pytrace=False)
    print(f"\n!!! SKIPPED: {reason} !!!\n", file=sys.stderr)
    pytest.skip(f"!!! {reason}")


def verse_bin() -> Path:
    path = Path(os.environ.get("VERSE_BIN", REPO / "target/debug/verse"))
    if not path.is_file():
        cannot_run(f"no verse binary at {path} (cargo build -p verse-cli, or set VERSE_BIN)")
    return path


def host_problem() -> str | None:
    if os.geteuid() != 0:
        return "not running as root (namespaces, cgroups and mounts need it)"
    if not Path("/proc/self/ns/user").exists():
        return "the kernel has no user namespaces"
    for tool in ("openssl",):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-deps.sh installs it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    """A running `verse daemon --listen` on a temporary root."""

    root: Path
    bin: Path
    url: str
    cert: Path
    process: subprocess.Popen[bytes]

    def verse(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs the verse CLI against this daemon (over its unix socket, as root)."""
        out = subprocess.run(
            [str(self.bin), *args],
            env={**os.environ, "VERSE_ROOT": str(self.root)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"`verse {' '.join(args)}` failed ({out.returncode}): {out.stderr}\n"
                f"daemon log:\n{self.log_tail()}"
            )
        return out

    def mint(self, rights: str) -> str:
        minted = json.loads(self.verse("token", "mint", "--allow", rights, "--json").stdout)
        return str(minted["token"])

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.root / "daemon.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def env_names(self) -> list[str]:
        return [e["name"] for e in json.loads(self.verse("ls", "--json").stdout)]


def _start(root: Path, bin: Path) -> Daemon:
    cert, key = root / "tls.crt", root / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    addr = f"127.0.0.1:{free_port()}"
    log = open(root / "daemon.log", "wb")  # noqa: SIM115 (the daemon keeps it)
    process = subprocess.Popen(
        [str(bin), "daemon", "--listen", addr, "--tls-cert", str(cert), "--tls-key", str(key)],
        env={**os.environ, "VERSE_ROOT": str(root), "VERSE_WEB": "127.0.0.1:0"},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    daemon = Daemon(root, bin, f"https://{addr}", cert, process)
    deadline = time.monotonic() + 15
    host, port = addr.rsplit(":", 1)
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the daemon exited at start:\n{daemon.log_tail()}")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            if (root / "run/verse/verse.sock").exists():
                return daemon
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the daemon did not come up:\n{daemon.log_tail()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """One daemon for the session, with the busybox image imported as `busybox`."""
    problem = host_problem()
    if problem:
        cannot_run(problem)
    bin = verse_bin()
    rootfs = subprocess.run(
        [str(REPO / "scripts/busybox-rootfs.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    root = Path(tempfile.mkdtemp(prefix="verse-sdk-"))
    d = _start(root, bin)
    try:
        out = d.verse("image", "import", "busybox", rootfs).stdout
        assert "imported busybox" in out, out
        yield d
    finally:
        # Remove every env so no process, cgroup or mount outlives the tests.
        try:
            for name in d.env_names():
                d.verse("rm", name, check=False)
        finally:
            d.process.terminate()
            try:
                d.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                d.process.kill()
                d.process.wait()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def token(daemon: Daemon) -> str:
    return daemon.mint(SDK_RIGHTS)


@pytest.fixture()
def verse(daemon: Daemon, token: str):  # type: ignore[no-untyped-def]
    from verse_sdk import Verse

    return Verse(daemon.url, token, ca=daemon.cert)
