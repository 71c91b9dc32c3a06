#!/usr/bin/env python3
"""Merges `strace -f -tt -T` files (the CLI's and the daemon's) into one
timeline relative to the first event, and lists the largest gaps.

    timeline.py CLI.strace DAEMON.strace
"""
import re
import sys

LINE = re.compile(r"^(\d+)\s+(\d+):(\d+):(\d+\.\d+)\s+(.*)$")


def load(path, tag):
    events = []
    for raw in open(path, errors="replace"):
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        pid, h, mi, s, rest = m.groups()
        t = int(h) * 3600 + int(mi) * 60 + float(s)
        events.append((t, tag, int(pid), rest))
    return events


def main(cli, daemon):
    events = sorted(load(cli, "cli") + load(daemon, "daemon"))
    if not events:
        sys.exit("no events")
    start = [e for e in events if e[1] == "cli"][0][0]
    end = [e for e in events if e[1] == "cli"][-1][0]
    events = [e for e in events if start <= e[0] <= end]
    print(f"-- timeline (ms from the CLI's execve; strace-inflated), {len(events)} events")
    prev = start
    gaps = []
    for t, tag, pid, rest in events:
        gap = (t - prev) * 1000
        gaps.append((gap, t, tag, pid, rest))
        mark = " <-- gap" if gap >= 1.0 else ""
        print(f"{(t - start) * 1000:8.2f} {tag:>6} {pid:>7}  {rest[:110]}{mark}")
        prev = t
    print(f"-- total {(end - start) * 1000:.2f} ms; largest gaps before an event:")
    for gap, t, tag, pid, rest in sorted(gaps, reverse=True)[:8]:
        print(f"  {gap:7.2f} ms before {(t - start) * 1000:7.2f}  {tag} {pid}  {rest[:90]}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
