"""Compare two `sbu run` result folders: every number the notebooks recorded (metrics.json and the CSV tables),
timings and paths left out, so a refactoring can show that results stayed the same.

    python benchmarks/compare_runs.py BEFORE AFTER [--rename OLD=NEW ...]

Values are matched by their path inside metrics.json (whichever notebook wrote them, so a table that moved from
one notebook to another is still compared) and by table name and row. It prints how many values were compared,
which differ, and which exist on one side only; exit status 1 when any compared value differs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

SKIP = re.compile(r"(?:seconds|_ms$|_s$|wall|time|path|^python$|threads|committed_at|\bat$|work|model$|adapter_sha256"
                  r"|certificate|^name$|cost)", re.I)


def flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}/{key}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, inner in enumerate(value):
            out.update(flatten(inner, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def recorded(folder: Path, renames: dict[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for metrics in sorted(folder.glob("*/metrics.json")):
        for key, value in flatten(json.loads(metrics.read_text())).items():
            if not any(SKIP.search(part) for part in key.split("/") if part):
                for old, new in renames.items():
                    key = key.replace(old, new)
                values[f"metrics{key}"] = value
    for table in sorted(folder.glob("*/*.csv")):
        frame = pd.read_csv(table)
        if "metric" in frame.columns:  # a long table: the metric's name says whether it is a timing
            frame = frame[~frame["metric"].astype(str).str.contains(SKIP)]
        keep = [c for c in frame.columns if not SKIP.search(str(c))]
        for row, record in frame[keep].iterrows():
            for column, value in record.items():
                values[f"{table.name}[{row}]/{column}"] = value
    return values


def same(a, b, tolerance: float = 0.0) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tolerance
    return a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rename", action="append", default=[], help="OLD=NEW: a key renamed between the runs")
    parser.add_argument("--tolerance", type=float, default=0.0, help="floats closer than this count as the same "
                        "(the differences within it are counted apart)")
    args = parser.parse_args(argv)
    renames = dict(r.split("=", 1) for r in args.rename)
    before, after = recorded(args.before, renames), recorded(args.after, {})
    both = sorted(set(before) & set(after))
    differ = [k for k in both if not same(before[k], after[k], args.tolerance)]
    close = [k for k in both if not same(before[k], after[k]) and k not in differ]
    print(f"{len(both)} values compared, {len(differ)} differ, {len(close)} more differ by at most "
          f"{args.tolerance:g}; {len(set(before) - set(after))} only before, "
          f"{len(set(after) - set(before))} only after")
    for key in differ[:50]:
        print(f"  differs: {key}: {before[key]!r} → {after[key]!r}")
    for side, keys in (("only before", set(before) - set(after)), ("only after", set(after) - set(before))):
        for key in sorted(keys)[:30]:
            print(f"  {side}: {key}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
