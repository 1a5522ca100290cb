#!/usr/bin/python3
"""Run analysis/figures.py on a result and check the figures it writes.

usage: check_figures.py FIGURES_PY RESULT.h5 OUTDIR NAME.png...

Passes when figures.py exits 0, prints exactly the paths OUTDIR/NAME.png given (so figures
whose groups are absent are skipped), and each is a PNG of at least 400x300 px that is not
blank."""
import subprocess
import sys
from pathlib import Path

from pngcheck import png_problem


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    script, result, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    expected = {out / name for name in sys.argv[4:]}
    run = subprocess.run([sys.executable, script, result, "--out", str(out)],
                         capture_output=True, text=True)
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        sys.exit(f"figures.py exited with {run.returncode}")
    printed = {Path(line) for line in run.stdout.split()}
    problems = [png_problem(p) for p in sorted(expected)]
    if printed != expected:
        problems.append(f"printed {sorted(map(str, printed))}, expected {sorted(map(str, expected))}")
    problems = [p for p in problems if p]
    if problems:
        sys.exit("\n".join(problems))
    print(f"{len(expected)} figures ok")


if __name__ == "__main__":
    main()
