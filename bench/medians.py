#!/usr/bin/env python3
"""Prints a markdown table of hyperfine medians (ms).

Usage: medians.py DIR NAME=LABEL ...   (reads DIR/NAME.json, hyperfine --export-json)
"""
import json
import os
import sys

out = sys.argv[1]
print("| operation | median ms |")
print("|---|---|")
for arg in sys.argv[2:]:
    name, label = arg.split("=", 1)
    result = json.load(open(os.path.join(out, name + ".json")))["results"][0]
    print(f"| {label} | {result['median'] * 1000:.1f} |")
