#!/usr/bin/python3
"""Run analysis/scaling.py on result files and check its strong-scaling table.

usage: check_scaling.py SCALING_PY OUTDIR RANKS RESULT.h5...

Passes when scaling.py exits 0, writes scaling.md with a strong-scaling row for each rank
count in RANKS (comma-separated, e.g. 1,2), every efficiency finite and positive, and a valid
scaling.png."""
import math
import subprocess
import sys
from pathlib import Path

from pngcheck import png_problem


def table_rows(markdown):
    """The rows of a markdown table as dicts keyed by its header."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    script, out, ranks = sys.argv[1], Path(sys.argv[2]), {int(p) for p in sys.argv[3].split(",")}
    run = subprocess.run([sys.executable, script, *sys.argv[4:], "--out", str(out)],
                         capture_output=True, text=True)
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        sys.exit(f"scaling.py exited with {run.returncode}")
    strong_table = (out / "scaling.md").read_text().split("## Weak")[0]
    rows = table_rows(strong_table)
    problems = []
    found = {int(r["ranks"]) for r in rows}
    if not ranks <= found:
        problems.append(f"rows for ranks {sorted(found)}, expected {sorted(ranks)}")
    for r in rows:
        efficiency = float(r["efficiency"])
        if not (math.isfinite(efficiency) and efficiency > 0):
            problems.append(f"{r['file']}: efficiency {r['efficiency']}")
    problems.append(png_problem(out / "scaling.png"))
    problems = [p for p in problems if p]
    if problems:
        sys.exit("\n".join(problems))
    print(f"strong scaling rows for ranks {sorted(found)} ok")


if __name__ == "__main__":
    main()
