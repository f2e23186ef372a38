#!/usr/bin/env python3
"""Prints the median time of each benchmark in a criterion group and its ratio to a baseline.

Usage: scripts/bench-ratios.py GROUP [BASELINE]   (after `cargo bench`; BASELINE defaults to the
group's first benchmark in alphabetical order). Reads target/criterion/GROUP/*/new/estimates.json.
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
if len(sys.argv) < 2:
    sys.exit(__doc__)
group = root / sys.argv[1]
medians = {}
for estimates in sorted(group.glob("*/new/estimates.json")):
    medians[estimates.parent.parent.name] = json.loads(estimates.read_text())["median"]["point_estimate"]
if not medians:
    sys.exit(f"no results under {group}: run `cargo bench` first")
baseline = sys.argv[2] if len(sys.argv) > 2 else next(iter(medians))
if baseline not in medians:
    sys.exit(f"no benchmark {baseline!r} in {sorted(medians)}")
for name, ns in medians.items():
    print(f"{sys.argv[1]}/{name:<40} median {ns:10.2f} ns   {ns / medians[baseline]:6.3f}x {baseline}")
