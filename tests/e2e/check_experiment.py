#!/usr/bin/python3
"""Checks the group an experiment wrote (tests/e2e): check_experiment.py KIND RESULT.h5.

Shapes and types of every dataset the README documents, fits with their formula, finite
values where a run succeeded, and the invariants that hold whatever the data: C_beta grows
with the number of random labels, the kinetic energy is non-negative, R(i|i) = 0.
"""
import sys

import h5py
import numpy as np


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def columns(f, group, names, length=None):
    """The 1-D datasets of a sweep, all of one length; returns them as arrays."""
    out = {}
    for n in names:
        path = f"{group}/{n}"
        if path not in f:
            fail(f"missing {path}")
        out[n] = f[path][()]
        if out[n].ndim != 1:
            fail(f"{path} is not 1-D")
    lengths = {len(v) for v in out.values()}
    if len(lengths) != 1 or (length is not None and lengths != {length}):
        fail(f"{group}: columns of lengths {lengths}, expected {length}")
    return out


def fit(f, path, nparams):
    for n in ("params", "stderr", "r2", "points"):
        if f"{path}/{n}" not in f:
            fail(f"missing {path}/{n}")
    g = f[path]
    for a in ("model", "param_names"):
        if a not in g.attrs:
            fail(f"{path} has no attribute {a}")
    p = g["params"][()]
    if len(p) != nparams or len(g["stderr"][()]) != nparams:
        fail(f"{path}: expected {nparams} parameters, got {len(p)}")
    r2 = float(g["r2"][0])
    if not np.isfinite(r2) or r2 > 1 + 1e-12:
        fail(f"{path}: R^2 = {r2}")
    return p, g["stderr"][()], r2


def convergence(f):
    sweep = ["seed", "steps", "C", "C_stderr", "loss", "status"]
    rl = columns(f, "/convergence/random_labels", ["n_random"] + sweep, 8)
    columns(f, "/convergence/batch_size", ["B"] + sweep, 8)
    columns(f, "/convergence/architecture", ["arch_index", "arch", "task"] + sweep, 12)
    ok = np.array([s.decode() == "ok" for s in rl["status"]])
    if ok.sum() < 6 or not np.all(np.isfinite(rl["C"][ok])) or np.any(rl["C"][ok] <= 0):
        fail(f"random-label runs: status {rl['status']}, C {rl['C']}")
    fit(f, "/convergence/fits/log_tau_vs_random_labels", 2)
    (a, b), (ea, eb), _ = fit(f, "/convergence/fits/C_vs_random_labels", 2)
    if not b > 3 * eb:  # memorising random labels costs nats: C grows with their number
        fail(f"C does not grow with the random labels: slope {b} ± {eb}")
    fit(f, "/convergence/fits/kramers", 3)
    for arch in ("linear", "mlp-32"):
        fit(f, f"/convergence/fits/log_tau_vs_C/{arch}", 2)
    print(f"convergence: dC/dn_random = {b:.3f} ± {eb:.3f} nats per label")


def potential(f):
    snaps = columns(f, "/potential/snapshots", ["step", "epoch", "U", "accuracy", "S_logdet", "S_logdet_stderr", "S_trace"])
    n = len(snaps["step"])
    if n < 10:
        fail(f"only {n} snapshots")
    mid = columns(f, "/potential", ["epoch", "U", "S_logdet", "S_trace", "half_v2"], n - 1)
    if not np.all(np.diff(snaps["step"]) > 0):
        fail("snapshot steps do not increase")
    for k in ("U", "S_logdet", "S_trace", "half_v2"):
        if not np.all(np.isfinite(mid[k])):
            fail(f"/potential/{k} is not finite")
    if np.any(mid["half_v2"] < 0) or np.any(snaps["S_trace"] < 0):
        fail("negative kinetic energy or trace")
    if not snaps["U"][-1] < snaps["U"][0]:
        fail("the training loss did not decrease")
    r2 = {}
    for form in ("logdet", "trace"):
        _, _, r2[form] = fit(f, f"/potential/fits/{form}", 3)
    _, _, r2_u = fit(f, "/potential/fits/U_only", 2)
    if min(r2.values()) < r2_u - 1e-9:  # nested models: adding S cannot lower R^2
        fail(f"R^2 with S {r2} below R^2 without {r2_u}")
    print(f"potential: R^2 logdet {r2['logdet']:.3f}, trace {r2['trace']:.3f}, U only {r2_u:.3f}")


def critical_period(f):
    cp = columns(f, "/critical_period", ["K", "seed", "steps", "C", "C_stderr", "loss", "status", "test_accuracy"], 8)
    if sorted(set(cp["K"])) != [0, 10, 20, 40]:
        fail(f"deficit lengths {sorted(set(cp['K']))}")
    acc = cp["test_accuracy"]
    if not np.all((acc > 0.1) & (acc <= 1)):
        fail(f"test accuracies {acc}")
    R = f["/reachability/R"][()]
    if R.shape != (2, 2) or R[0, 0] != 0 or R[1, 1] != 0:
        fail(f"R of the sharp/blurred pair: {R}")
    names = [n.decode() for n in f["/tasks/name"][()]]
    if names != ["fashion", "fashion-blurred"]:
        fail(f"tasks {names}")
    t = "/critical_period/transfer"
    for k in ("R_sharp_from_blurred", "R_blurred_from_sharp", "steps_sharp_from_blurred", "steps_blurred_from_sharp"):
        if f"{t}/{k}" not in f:
            fail(f"missing {t}/{k}")
    if f[f"{t}/R_sharp_from_blurred"][0] != R[0, 1]:
        fail("transfer R disagrees with /reachability/R")
    means = {k: acc[cp["K"] == k].mean() for k in sorted(set(cp["K"]))}
    print("critical_period: test accuracy by K " + ", ".join(f"{k:g}: {v:.3f}" for k, v in means.items()))


if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    with h5py.File(path, "r") as f:
        got = f.attrs["experiment"]
        got = got.decode() if isinstance(got, bytes) else str(got)
        if got != kind:
            fail(f"experiment attribute {got!r}, expected {kind!r}")
        {"convergence": convergence, "potential": potential, "critical_period": critical_period}[kind](f)
    print("ok")
