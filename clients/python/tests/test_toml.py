"""The `[env.NAME]` table create() sends reads back, with tomllib, as what was given."""

from __future__ import annotations

import tomllib

import pytest

from verse_sdk._toml import env_table


def test_values_of_every_kind_read_back_equal() -> None:
    fields = {
        "image": "busybox",
        "cpu": 1.5,
        "memory": "512MiB",
        "pids": 64,
        "ephemeral": True,
        "network": {"allow": ["example.org:443", "10.0.0.0/8:*"]},
        "env": {"QUOTE": 'say "hi"\\', "TABS\tKEY": "a\tb\nc", "CTRL": "\x00\x1f\x7f", "UNI": "é😀"},
        "command": ["/bin/sh", "-c", "echo 'x' && exit 0"],
        "volumes": {},
        "skipped": None,
    }
    parsed = tomllib.loads(env_table("sdk-1", fields))
    expected = {k: v for k, v in fields.items() if v is not None}
    assert parsed == {"env": {"sdk-1": expected}}


def test_a_name_that_needs_quotes_is_quoted() -> None:
    assert tomllib.loads(env_table("a.b", {"image": "x"})) == {"env": {"a.b": {"image": "x"}}}


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (float("nan"), ValueError, "cpu: nan is not a finite number"),
        (b"raw", TypeError, "cpu: a bytes"),
        ({1: "x"}, TypeError, "key 1"),
    ],
)
def test_what_toml_cannot_hold_is_refused_naming_the_key(
    value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        env_table("e", {"cpu": value})
