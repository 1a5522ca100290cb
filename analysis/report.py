#!/usr/bin/python3
"""Read a taskreach result and say what it supports.

usage: /usr/bin/python3 analysis/report.py RESULT.h5

Prints the asymmetries R(i|j) vs R(j|i) that the errors resolve (difference beyond three
combined standard errors), and — when the run measured fine-tuning — how well R ranks the
measured fine-tune cost T(i|j) over the reached off-diagonal pairs, beside the simplest
baseline (the target's own from-scratch cost T(i|i)). Lists the figures of the result when
analysis/figures.py has written them beside it. Needs h5py, numpy and scipy (Debian:
python3-h5py python3-numpy python3-scipy)."""
import sys

import h5py
import numpy as np
from scipy import stats

from common import figures_dir, read_result


def print_asymmetries(res):
    """Each pair's R(i|j) - R(j|i), resolved ones first."""
    names, R, se = res.names, res.R, res.stderr
    print("\nasymmetries resolved (|R(i|j) - R(j|i)| > 3 combined stderr):")
    unresolved = []
    for i in range(res.n):
        for j in range(i + 1, res.n):
            d = R[i, j] - R[j, i]
            s = np.hypot(se[i, j], se[j, i])
            line = f"  R({names[i]}|{names[j]}) - R({names[j]}|{names[i]}) = {d:+.1f} +- {s:.1f} nats"
            if np.isfinite(d) and abs(d) > 3 * s:
                print(line)
            else:
                unresolved.append(line)
    if unresolved:
        print("not resolved:")
        print("\n".join(unresolved))


def print_rank_agreement(res):
    """Spearman of R and of the scratch-cost baseline with the fine-tune steps T(i|j)."""
    R, T, n = res.R, res.T, res.n
    use = res.resolved_reached()
    print(f"\nR against fine-tune steps over {int(use.sum())} resolved, reached off-diagonal pairs:")
    if use.sum() < 3:
        print("  too few pairs for a correlation")
        return
    scratch = np.repeat(np.diag(T)[:, None], n, axis=1)
    for label, x in (("R(i|j)", R), ("baseline T(i|i)", scratch)):
        rho = stats.spearmanr(x[use], T[use]).correlation
        print(f"  Spearman {label:16s} vs T(i|j): {rho:+.3f}")
    unreached = int((res.off_diagonal() & (T < 0)).sum())
    if unreached:
        print(f"  ({unreached} pairs not reached within max_steps)")


def print_figures(result_path):
    """The PNGs figures.py wrote beside the result, if any."""
    pngs = sorted(figures_dir(result_path).glob("*.png"))
    if pngs:
        print("\nfigures:")
        print("\n".join(f"  {p}" for p in pngs))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with h5py.File(sys.argv[1], "r") as f:
        res = read_result(f)
    print(f"{res.n} tasks: {', '.join(res.names)}")
    print_asymmetries(res)
    if res.T is not None:
        print_rank_agreement(res)
    print_figures(sys.argv[1])


if __name__ == "__main__":
    main()
