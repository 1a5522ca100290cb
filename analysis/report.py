#!/usr/bin/python3
"""Read a taskreach result and say what it supports.

usage: /usr/bin/python3 analysis/report.py RESULT.h5

Prints the asymmetries R(i|j) vs R(j|i) that the errors resolve (difference beyond three
combined standard errors), and — when the run measured fine-tuning — how well R ranks the
measured fine-tune cost T(i|j) over the reached off-diagonal pairs, beside the simplest
baseline (the target's own from-scratch cost T(i|i)). Needs h5py, numpy and scipy (Debian:
python3-h5py python3-numpy python3-scipy)."""
import sys

import h5py
import numpy as np
from scipy import stats


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with h5py.File(sys.argv[1], "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["tasks/name"][:]]
        R, se = f["reachability/R"][:], f["reachability/stderr"][:]
        T = f["finetune/steps"][:] if "finetune/steps" in f else None
    n = len(names)
    print(f"{n} tasks: {', '.join(names)}")
    print("\nasymmetries resolved (|R(i|j) - R(j|i)| > 3 combined stderr):")
    unresolved = []
    for i in range(n):
        for j in range(i + 1, n):
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
    if T is None:
        return
    off = ~np.eye(n, dtype=bool)
    use = off & (T >= 0) & np.isfinite(R) & (np.abs(R) > 3 * se)
    print(f"\nR against fine-tune steps over {int(use.sum())} resolved, reached off-diagonal pairs:")
    if use.sum() < 3:
        print("  too few pairs for a correlation")
        return
    scratch = np.repeat(np.diag(T)[:, None], n, axis=1)
    for label, x in (("R(i|j)", R), ("baseline T(i|i)", scratch)):
        rho = stats.spearmanr(x[use], T[use]).correlation
        print(f"  Spearman {label:16s} vs T(i|j): {rho:+.3f}")
    unreached = int((off & (T < 0)).sum())
    if unreached:
        print(f"  ({unreached} pairs not reached within max_steps)")


if __name__ == "__main__":
    main()
