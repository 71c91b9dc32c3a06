"""Writes the one ``[env.NAME]`` table :meth:`Verse.create` sends to the daemon.

The standard library reads TOML (``tomllib``) but does not write it; an env's
fields are strings, numbers, booleans, arrays and small tables, which this
writes as basic strings and inline tables. Anything else is refused here, naming
the key (TypeError, or ValueError for a number TOML cannot write), rather than sent as something the daemon would misread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def key(name: str) -> str:
    if name and set(name) <= _BARE:
        return name
    return string(name)


def value(v: Any, where: str) -> str:
    """``v`` as a TOML value; ``where`` names it in errors."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{where}: {v} is not a finite number")
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, Mapping):
        items = []
        for k, item in v.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string")
            items.append(f"{key(k)} = {value(item, f'{where}.{k}')}")
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(v, Sequence) and not isinstance(v, (bytes, bytearray)):
        return "[" + ", ".join(value(item, f"{where}[{i}]") for i, item in enumerate(v)) + "]"
    raise TypeError(f"{where}: a {type(v).__name__} cannot be written to a spec")


def env_table(name: str, fields: Mapping[str, Any]) -> str:
    """``[env.NAME]`` with ``fields`` (None values left out), one key a line."""
    lines = [f"[env.{key(name)}]"]
    for k, v in fields.items():
        if v is not None:
            lines.append(f"{key(k)} = {value(v, k)}")
    return "\n".join(lines) + "\n"
