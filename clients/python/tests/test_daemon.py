"""The SDK against a real daemon over its TLS API: what an agent framework does
(create an env, run commands, move files, snapshot, destroy), checked the way a
user would check it, and the CLI consulted as an independent witness."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from conftest import Daemon, cannot_run

from verse_sdk import (
    CommandError,
    Conflict,
    ExecTimeout,
    FileError,
    Forbidden,
    NotFound,
    Rejected,
    TransportError,
    Unauthorized,
    Verse,
)


def test_round_trip_create_exec_files_snapshot_destroy(verse: Verse, daemon: Daemon) -> None:
    env = verse.create("busybox", cpu=0.5, memory="64MiB", pids=64)
    info = env.info()
    assert info.state == "running", info
    assert (info.cpu, info.memory, info.pids) == (0.5, 64 * 1024 * 1024, 64)
    assert env.name in daemon.env_names()

    hello = env.exec("echo hello")
    assert (hello.stdout, hello.stderr, hello.exit_code) == ("hello\n", "", 0)
    failed = env.exec(["/bin/sh", "-c", "echo oops >&2; exit 3"])
    assert (failed.stdout, failed.stderr, failed.exit_code) == ("", "oops\n", 3)

    # More than one frame each way (frames carry at most 64 KiB).
    blob = bytes(range(256)) * 1200
    env.files.write("/tmp/data.bin", blob)
    assert env.files.read("/tmp/data.bin") == blob
    digest = env.exec("sha256sum /tmp/data.bin", check=True).stdout.split()[0]
    assert digest == hashlib.sha256(blob).hexdigest()
    # The CLI sees the same file.
    seen = daemon.verse("exec", env.name, "--", "wc", "-c", "/tmp/data.bin").stdout
    assert seen.split()[0] == str(len(blob))

    snap = env.snapshot("after-write")
    assert snap.env == env.name and snap.label == "after-write"
    assert snap.files >= 1 and snap.size >= len(blob)
    assert [s.id for s in env.snapshots()] == [snap.id]
    listed = daemon.verse("snapshot", "ls", env.name, check=False)
    if listed.returncode == 0:
        assert snap.id in listed.stdout

    assert env.destroy() is True
    assert env.name not in daemon.env_names()
    with pytest.raises(NotFound) as gone:
        env.info()
    assert env.name in gone.value.error and gone.value.hint
    assert env.destroy() is False


def test_large_output_arrives_whole_every_time(verse: Verse) -> None:
    # Each read sends end-of-stdin while 300 kB come back: the daemon must not
    # close the TLS connection with that input unread (TCP would reset it and
    # the client lose the end of the output and the exit code).
    with verse.create("busybox") as env:
        blob = bytes(range(256)) * 1200
        env.files.write("/tmp/data.bin", blob)
        for _ in range(30):
            assert env.files.read("/tmp/data.bin") == blob


def test_restore_brings_back_what_the_snapshot_held(verse: Verse) -> None:
    with verse.create("busybox") as env:
        env.files.write("/root/notes.txt", "first draft\n")
        snap = env.snapshot()
        env.files.write("/root/notes.txt", "ruined\n")
        env.restore(snap)
        assert env.info().state == "running"
        assert env.files.read_text("/root/notes.txt") == "first draft\n"


def test_context_manager_destroys_the_env_even_when_the_block_fails(verse: Verse, daemon: Daemon) -> None:
    with pytest.raises(RuntimeError, match="agent crashed"), verse.create("busybox") as env:
        name = env.name
        assert env.exec("true").ok
        raise RuntimeError("agent crashed")
    assert name not in daemon.env_names()


def test_exec_passes_stdin_env_cwd_and_large_output(verse: Verse) -> None:
    with verse.create("busybox", env={"GREETING": "hi"}) as env:
        text = "line\n" * 40000  # 200 kB in, 200 kB out
        echoed = env.exec("cat", stdin=text)
        assert echoed.stdout == text and echoed.exit_code == 0
        got = env.exec('echo "$GREETING $EXTRA $(pwd)"', env={"EXTRA": "there"}, cwd="/tmp")
        assert got.stdout == "hi there /tmp\n"
        # Binary output comes back byte for byte.
        raw = env.exec(["printf", "\\000\\377\\n"]).stdout_bytes
        assert raw == b"\x00\xff\n"


def test_exec_check_and_timeout(verse: Verse) -> None:
    with verse.create("busybox") as env:
        with pytest.raises(CommandError) as failed:
            env.exec("echo nope >&2; exit 7", check=True)
        assert failed.value.result.exit_code == 7 and "nope" in str(failed.value)
        start = time.monotonic()
        with pytest.raises(ExecTimeout) as slow:
            env.exec("echo started; sleep 60", timeout=1.5)
        assert time.monotonic() - start < 15
        assert slow.value.stdout == b"started\n"
        # The env is still usable afterwards, and the sleep is gone.
        assert "sleep 60" not in env.exec("ps", check=True).stdout


def test_files_errors_name_the_path_and_leave_nothing_half_written(verse: Verse) -> None:
    with verse.create("busybox") as env:
        with pytest.raises(FileError) as missing:
            env.files.read("/no/such/file")
        assert missing.value.path == "/no/such/file"
        assert "No such file" in missing.value.reason
        with pytest.raises(FileError):
            env.files.write("/no/such/dir/f", b"x")
        env.files.write("/work/deep/f.sh", "#!/bin/sh\necho ran\n", parents=True, mode=0o755)
        assert env.exec("/work/deep/f.sh").stdout == "ran\n"
        assert env.exec("ls -A /work/deep").stdout == "f.sh\n"  # no temporary file left
        with pytest.raises(ValueError, match="absolute"):
            env.files.read("relative/path")


def test_api_errors_carry_the_daemons_message_and_hint(daemon: Daemon, verse: Verse) -> None:
    with pytest.raises(Rejected) as bad_image:
        verse.create("no-such-image")
    assert "no-such-image" in str(bad_image.value)
    with pytest.raises(Rejected) as bad_key:
        verse.create("busybox", memroy="1GiB")
    assert "memroy" in str(bad_key.value) and "memory" in str(bad_key.value)
    with pytest.raises(Rejected) as bad_cpu:
        verse.create("busybox", cpu=-1)
    assert bad_cpu.value.diagnostics and "cpu" in bad_cpu.value.diagnostics[0].message

    with verse.create("busybox") as env:
        with pytest.raises(Conflict) as taken:
            verse.create("busybox", name=env.name)
        assert env.name in taken.value.error and taken.value.hint
        env.stop()
        with pytest.raises(Conflict) as stopped:
            env.exec("true")
        assert "not running" in stopped.value.error and "verse up" in (stopped.value.hint or "")
        env.start()
        assert env.exec("true").ok

    with pytest.raises(Unauthorized) as no_token:
        Verse(daemon.url, "not-a-token", ca=daemon.cert).envs()
    assert "verse token mint" in (no_token.value.hint or "")
    reader = Verse(daemon.url, daemon.mint("env:*:read"), ca=daemon.cert)
    reader.envs()
    with pytest.raises(Forbidden):
        reader.create("busybox")


def test_tls_is_checked(daemon: Daemon, token: str, tmp_path: Path) -> None:
    # Without the daemon's certificate, the system's trust store refuses it.
    with pytest.raises(TransportError, match="certificate"):
        Verse(daemon.url, token).envs()
    with pytest.raises(ValueError, match="https"):
        Verse(daemon.url.replace("https", "http"), token)
    port = daemon.url.rsplit(":", 1)[1]
    closed = f"https://127.0.0.1:{int(port) + 1 if int(port) < 65535 else 1}"
    with pytest.raises(TransportError, match="connecting"):
        Verse(closed, token, ca=daemon.cert, timeout=5).envs()


def test_hibernate_and_resume(verse: Verse, daemon: Daemon) -> None:
    checks = json.loads(daemon.verse("doctor", "--json", check=False).stdout)["checks"]
    criu = next((c for c in checks if c["name"] == "criu"), None)
    if criu is None or criu["status"] != "ok":
        cannot_run(f"CRIU is not usable here ({criu}); scripts/install-criu.sh installs it")
    with verse.create("busybox") as env:
        env.exec("echo 41 > /tmp/counter", check=True)
        assert env.hibernate().state == "hibernated"
        assert env.info().pid is None
        assert env.resume().state == "running"
        assert env.files.read_text("/tmp/counter") == "41\n"
