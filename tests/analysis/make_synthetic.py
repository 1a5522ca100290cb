#!/usr/bin/python3
"""Write a small synthetic taskreach result with every group figures.py draws.

usage: make_synthetic.py OUT.h5 [--no-tasks]

Besides minimal /tasks, /reachability (one NaN), /finetune (one "not reached", one T = 0),
/analysis and /spectra, it holds the planned /convergence (sweeps and fits, one of them failed),
/potential and /critical_period groups, so that their figures are exercised before a run writes
them. Fit scalars are 1-element datasets, as taskreach writes them. With --no-tasks the file is
like an experiment's: an empty /tasks/name, a 0 x 0 R and an empty /spectra."""
import sys

import h5py
import numpy as np

TASKS = ["alpha", "beta", "gamma-long-name"]
CONFIG = 'name = "synthetic"\n[finetune]\nmax_steps = 500\n'


def write_core(f, rng):
    """/tasks, /reachability, /finetune, /analysis and /spectra for three tasks."""
    n = len(TASKS)
    f.attrs.update(config=CONFIG, logdet_c=1.0, mpi_ranks=1, ranks_per_task=1, seeds=1,
                   schedule_seconds=1.0)
    f["tasks/name"] = np.array(TASKS, dtype="S")
    f["tasks/num_samples"] = np.full(n, 100, dtype=np.int64)
    R = rng.uniform(50, 400, (n, n))
    np.fill_diagonal(R, 0)
    R[2, 0] = np.nan
    f["reachability/R"] = R
    f["reachability/stderr"] = np.where(np.isnan(R), np.nan, rng.uniform(1, 20, (n, n)) * (R > 0))
    f["finetune/steps"] = np.array([[100, 0, 250], [40, 80, -1], [300, 120, 200]], dtype=np.int64)
    f["analysis/spearman_R_T"] = 0.8
    f["analysis/pearson_R_logT"] = 0.7
    f["analysis/pairs_used"] = np.int64(3)
    for name, rho in (("scratch_cost", 0.5), ("loss_at_source", 0.6), ("target_complexity", np.nan)):
        f[f"analysis/baselines/{name}/spearman_T"] = rho
    # The cross-validated prediction, one model without a value (a fold that could not be fitted).
    for k, (model, rho, rmse) in enumerate((("R", 0.6, 0.8), ("scratch_cost", 0.5, 0.9),
                                            ("loss_at_source", 0.3, 1.1), ("target_complexity", np.nan, np.nan),
                                            ("scratch_cost_R", 0.7, 0.7), ("baselines", 0.55, 0.85),
                                            ("baselines_R", 0.72, 0.68))):
        for stat, v in (("spearman_logT", rho), ("rmse_logT", rmse)):
            f[f"analysis/prediction/{model}/{stat}"] = v
            f[f"analysis/prediction/{model}/{stat}_lo"] = v - 0.2
            f[f"analysis/prediction/{model}/{stat}_hi"] = v + 0.15
    f["analysis/prediction/R_gain_over_scratch_cost/rmse_logT"] = 0.2
    f["analysis/prediction/R_gain_over_scratch_cost/adds"] = np.int64(0)
    f["analysis/prediction/pairs"] = np.int64(5)
    f["analysis/prediction/targets"] = np.int64(3)
    for t in TASKS:
        f[f"spectra/{t}/eigenvalues"] = np.sort(rng.lognormal(3, 1, 5))[::-1]
        nodes = rng.lognormal(0, 2, 60)
        f[f"spectra/{t}/esd_nodes"] = nodes
        f[f"spectra/{t}/esd_weights"] = np.full(nodes.size, 1 / nodes.size)


def write_empty_core(f):
    """The reachability part of an experiment's file: no tasks."""
    f.attrs.update(config=CONFIG, mpi_ranks=1, ranks_per_task=1, seeds=1, schedule_seconds=1.0)
    f["tasks/name"] = np.array([], dtype="S1")
    f["reachability/R"] = np.zeros((0, 0))
    f["reachability/stderr"] = np.zeros((0, 0))
    f.create_group("spectra")


def write_fit(g, params, model, names):
    """A fit group as the planned schema has it; NaN params = a fit that could not be made."""
    g["params"] = np.asarray(params, dtype=float)
    g["stderr"] = 0.1 * np.abs(np.asarray(params, dtype=float))
    g["r2"] = [0.9]
    g["points"] = [8.0]
    g.attrs["model"] = model
    g.attrs["param_names"] = names


def write_convergence(f, rng):
    """The three sweeps with a NaN (not converged) run, and their fits."""
    seeds = np.repeat([0, 1], 4)
    n_random = np.tile([0, 10, 20, 40], 2).astype(float)
    steps = np.exp(4 + 0.05 * n_random + rng.normal(0, 0.1, 8))
    steps[-1] = np.nan
    g = f.create_group("convergence/random_labels")
    g["n_random"], g["seed"], g["steps"], g["C"] = n_random, seeds, steps, 100 + 3 * n_random
    B = np.tile([16, 32, 64, 128], 2).astype(float)
    g = f.create_group("convergence/batch_size")
    g["B"], g["seed"], g["C"] = B, seeds, np.full(8, 150.0)
    g["steps"] = np.exp(3 + 0.01 * B + rng.normal(0, 0.1, 8))
    g = f.create_group("convergence/architecture")
    g["arch"] = np.array(["mlp"] * 4 + ["cnn"] * 4, dtype="S")
    g["seed"], C = seeds, rng.uniform(100, 300, 8)
    g["C"], g["steps"] = C, np.exp(2 + 0.01 * C)
    fits = f.create_group("convergence/fits")
    write_fit(fits.create_group("log_tau_vs_random_labels"), [4, 0.05],
              "log τ = a + b·n_random", "a, b")
    write_fit(fits.create_group("kramers"), [3, 0.01], "log τ = log c + s·B", "log_c, s")
    write_fit(fits.create_group("log_tau_vs_C/mlp"), [2, 0.01], "log τ = a + b·C", "a, b")
    write_fit(fits.create_group("log_tau_vs_C/cnn"), [np.nan, np.nan], "log τ = a + b·C", "a, b")


def write_potential(f, rng):
    """Series over 10 epochs with ½v² = E − a·U − b·S plus noise, and both fits."""
    g = f.create_group("potential")
    epoch = np.arange(10.0)
    U, S_logdet, S_trace = np.exp(-epoch / 3), 50 + 5 * epoch, 1000 + 80 * epoch
    g["epoch"], g["U"], g["S_logdet"], g["S_trace"] = epoch, U, S_logdet, S_trace
    g["half_v2"] = 10 - 2 * U - 0.1 * S_logdet + rng.normal(0, 0.05, 10)
    write_fit(g.create_group("fits/logdet"), [10, 2, 0.1], "½v² = E − a·U − b·S", "E, a, b")
    write_fit(g.create_group("fits/trace"), [9, 2, 0.006], "½v² = E − a·U − b·S", "E, a, b")


def write_critical_period(f, rng):
    """Deficit lengths 0..40 (K = 0: no deficit), two seeds each."""
    g = f.create_group("critical_period")
    K = np.repeat([0, 10, 20, 40], 2).astype(float)
    g["K"], g["seed"] = K, np.tile([0, 1], 4)
    g["test_accuracy"] = 0.9 - 0.003 * K + rng.normal(0, 0.005, 8)
    g["C"] = 200 + 2 * K + rng.normal(0, 3, 8)
    g["transfer/R_sharp_from_blurred"] = [120.0]


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--no-tasks"]):
        sys.exit(__doc__)
    rng = np.random.default_rng(1)
    with h5py.File(sys.argv[1], "w") as f:
        if sys.argv[2:]:
            write_empty_core(f)
        else:
            write_core(f, rng)
        write_convergence(f, rng)
        write_potential(f, rng)
        write_critical_period(f, rng)


if __name__ == "__main__":
    main()
