#!/usr/bin/env python3
"""Prints medians, min/max and ratios from hyperfine --export-json files.

    report.py FILE.json REFERENCE-NAME [FILE.json REFERENCE-NAME ...]

The ratio column is each command's median over the reference command's median
(so `verse run --rm` / `crun run` < 1 means verse is faster). Stdlib only.
"""
import json
import sys


def ms(seconds):
    return f"{seconds * 1000:8.2f}"


def table(path, reference):
    results = json.load(open(path))["results"]
    medians = {r["command"]: r["median"] for r in results}
    ref = medians.get(reference)
    print(f"{path}")
    print(f"  {'command':<20} {'median ms':>9} {'mean ms':>8} {'stddev':>8} "
          f"{'min ms':>8} {'max ms':>8} {'runs':>5} {'failed':>6} {'vs ' + reference:>14}")
    for r in results:
        ratio = f"{r['median'] / ref:14.2f}" if ref else f"{'-':>14}"
        print(f"  {r['command']:<20} {ms(r['median']):>9} {ms(r['mean'])} "
              f"{ms(r['stddev'] or 0)} {ms(r['min'])} {ms(r['max'])} "
              f"{len(r['times']):5d} {sum(1 for c in r.get('exit_codes', []) if c):6d} {ratio}")
    print()


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        sys.exit(__doc__)
    for i in range(0, len(argv), 2):
        table(argv[i], argv[i + 1])


if __name__ == "__main__":
    main(sys.argv[1:])
