#!/usr/bin/python3
"""compare_h5.py REFERENCE OTHER [--order I,J,...] [--new K]

Checks that OTHER holds REFERENCE's matrices to 1e-12 (NaN where REFERENCE has NaN):
complexity, unions, reachability (with its errors) and fine-tune steps, samples, thresholds.
--order: OTHER's task t is REFERENCE's task order[t] (a reordered job file); default: the
identity over REFERENCE's tasks. --new K: OTHER has K more tasks after those, whose rows and
columns of R and the union C must be present (finite). Prints what differs; exit 1 if any."""
import sys

import h5py
import numpy as np

VECTORS = ["complexity/C", "complexity/C_stderr", "complexity/loss", "complexity/logdet", "finetune/threshold"]
MATRICES = ["unions/C", "reachability/R", "reachability/R_per_sample", "reachability/stderr", "finetune/steps",
            "finetune/samples"]


def main(argv):
    ref_path, other_path = argv[1], argv[2]
    order, new = None, 0
    args = argv[3:]
    while args:
        if args[0] == "--order":
            order = [int(x) for x in args[1].split(",")]
        elif args[0] == "--new":
            new = int(args[1])
        else:
            sys.exit(f"compare_h5.py: unknown argument {args[0]}")
        args = args[2:]
    bad = []
    with h5py.File(ref_path, "r") as ref, h5py.File(other_path, "r") as oth:
        n = len(ref["tasks/name"])
        order = order if order is not None else list(range(n))
        m = len(order)
        if len(oth["tasks/name"]) != m + new:
            bad.append(f"tasks: expected {m + new} in {other_path}, found {len(oth['tasks/name'])}")
        names_ref = [x.decode() for x in ref["tasks/name"][:]]
        names_oth = [x.decode() for x in oth["tasks/name"][:]]
        print("reference tasks", names_ref, "other tasks", names_oth)

        def same(what, a, b):
            a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
            if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
                bad.append(f"{what}: shapes or NaNs differ")
                return
            d = np.nanmax(np.abs(a - b)) if a.size and not np.all(np.isnan(a)) else 0.0
            if d > 1e-12:
                bad.append(f"{what}: differs by {d}")

        idx = np.array(order)
        for v in VECTORS:
            if v in ref:
                same(v, ref[v][:][idx], oth[v][:][:m])
        for mat in MATRICES:
            if mat in ref:
                same(mat, ref[mat][:][np.ix_(idx, idx)], oth[mat][:][:m, :m])
        for mat in ["reachability/R", "unions/C"]:
            a = oth[mat][:]
            for k in range(m, m + new):
                if not (np.all(np.isfinite(a[k, :])) and np.all(np.isfinite(a[:, k]))):
                    bad.append(f"{mat}: row or column {k} ({names_oth[k]}) not finite")
    for b in bad:
        print("DIFFERS:", b)
    print("same to 1e-12" if not bad else f"{len(bad)} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
