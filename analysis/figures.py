#!/usr/bin/python3
"""Draw the figures of a taskreach result.

usage: /usr/bin/python3 analysis/figures.py RESULT.h5 [--out DIR]

Writes PNGs into DIR (default: RESULT_figures/ beside RESULT.h5) and prints each path:
  reachability.png     R(i|j) heatmap, rows = target i, columns = source j, with ± stderr
  finetune.png         fine-tune steps T(i|j); diagonal = from scratch         (needs /finetune)
  r_vs_steps.png       R(i|j) against T(i|j), and R's and the baselines'
                       rank agreement with T (/analysis)                       (needs /finetune)
  prediction.png       leave-one-target-out prediction of log(1+T): each predictor
                       alone and R added, with 95% bootstrap intervals   (needs /analysis/prediction)
  spectra.png          top-k eigenvalues and spectral density of G per task     (needs /spectra)
  convergence.png      convergence time τ against each sweep, with the fits
                       log τ = a + b·x (natural log)                         (needs /convergence)
  potential.png        the potential series and the fits of ½v²                (needs /potential)
  critical_period.png  accuracy and C against the deficit length K       (needs /critical_period)
A figure whose group is absent is skipped. Needs h5py, numpy and matplotlib (Debian:
python3-h5py python3-numpy python3-matplotlib)."""
import argparse
from pathlib import Path

import h5py
import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from common import figures_dir, job_config, read_result, scalar, strings, task_names, text
from plotting import plain_log_ticks, plt, save

BASELINES = ("scratch_cost", "loss_at_source", "target_complexity")


# ----------------------------------------------------------------------------- helpers

def short(name, width=12):
    """A task name cut to `width` characters for crowded labels."""
    return name if len(name) <= width else name[:width - 1] + "…"


def fmt(v):
    """A value with about three significant digits."""
    if not np.isfinite(v):
        return "n/a"
    a = abs(v)
    if a >= 100 or v == 0:
        return f"{v:.0f}"
    return f"{v:.1f}" if a >= 10 else f"{v:.2f}"


def matrix_figure(n):
    """A figure and axes sized for an n x n annotated heatmap."""
    side = max(5.5, 1.15 * n + 2.5)
    return plt.subplots(figsize=(side + 1.5, side), layout="constrained")


def hatch_cells(ax, cells, label):
    """Grey hatched boxes labelled `label` over the cells (i, j) of a heatmap."""
    for i, j in cells:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85", edgecolor="0.5",
                               hatch="///", linewidth=0))
        ax.text(j, i, label, ha="center", va="center", fontsize=9, color="0.2",
                bbox=dict(boxstyle="round,pad=0.15", fc="0.85", ec="none"))


def task_axes(ax, names, title):
    """Task names on both axes of a target-by-source heatmap."""
    n = len(names)
    ax.set_xticks(range(n), [short(s, 16) for s in names], rotation=30, ha="right")
    ax.set_yticks(range(n), [short(s, 16) for s in names])
    ax.set_xlabel("source task j (trained first)")
    ax.set_ylabel("target task i (to be learned)")
    ax.set_title(title)


def text_colour(image, value):
    """Black or white, whichever reads on the colour of `value` in `image`."""
    r, g, b, _ = image.cmap(image.norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def read_fit(group):
    """A fit group (params, stderr, r2, optional points, and the attributes model and
    param_names) as a dict; `ok` is False where the fit could not be made (NaN parameters)."""
    params = group["params"][()]
    return dict(params=params, stderr=group["stderr"][()], r2=group["r2"][()].item(),
                points=int(group["points"][()].item()) if "points" in group else None,
                ok=bool(np.all(np.isfinite(params))), model=text(group.attrs.get("model", "")),
                names=[s.strip() for s in text(group.attrs.get("param_names", "")).split(",")])


def fit_label(fit):
    """Legend text of a fit: the formula, its parameters ± stderr, R² and the points used."""
    if not fit["ok"]:
        return f"{fit['model']}: no fit (too few trusted runs)"
    params = ", ".join(f"{name} = {p:.3g} ± {s:.2g}"
                       for name, p, s in zip(fit["names"], fit["params"], fit["stderr"]))
    points = f", {fit['points']} runs" if fit["points"] is not None else ""
    return f"{fit['model']}\n{params}, R² = {fit['r2']:.3f}{points}"


def columns(group, *names):
    """The 1-D datasets `names` of `group` as float arrays (strings stay strings)."""
    out = []
    for name in names:
        d = group[name]
        out.append(np.array(strings(d)) if d.dtype.kind in "SOU" else d[()].astype(float))
    return out


# ----------------------------------------------------------------------------- R and T

def reachability_figure(res, out):
    """Heatmap of R(i|j) in nats, each cell with its value (± stderr) and NaN as n/a."""
    n = res.n
    fig, ax = matrix_figure(n)
    image = ax.imshow(np.ma.masked_invalid(res.R), cmap="viridis")
    fig.colorbar(image, ax=ax, shrink=0.8,
                 label="R(i|j) [nats]: information about i a model of j lacks")
    show_error = n <= 8
    for i in range(n):
        for j in range(n):
            r, s = res.R[i, j], res.stderr[i, j]
            if not np.isfinite(r):
                continue
            label = fmt(r) + (f"\n± {fmt(s)}" if show_error and np.isfinite(s) and s > 0 else "")
            ax.text(j, i, label, ha="center", va="center", fontsize=9 if n <= 6 else 7,
                    color=text_colour(image, r))
    hatch_cells(ax, zip(*np.nonzero(~np.isfinite(res.R))), "n/a")
    task_axes(ax, res.names, "Reachability R(i|j): nats to learn target i\n"
                             "starting from source j (± combined stderr)")
    return save(fig, out / "reachability.png")


def finetune_figure(res, max_steps, out):
    """Heatmap of the fine-tune steps T(i|j); -1 shown as "not reached", diagonal from scratch."""
    T, n = res.T, res.n
    fig, ax = matrix_figure(n)
    reached = np.where(T >= 0, T, np.nan).astype(float)
    image = ax.imshow(np.ma.masked_invalid(reached), cmap="magma_r", norm=PowerNorm(0.5))
    fig.colorbar(image, ax=ax, shrink=0.8,
                 label="T(i|j) [SGD steps until loss of i ≤ θ_i] (square-root scale)")
    for i in range(n):
        for j in range(n):
            if T[i, j] >= 0:
                label = f"{T[i, j]}" + ("\n(scratch)" if i == j else "")
                ax.text(j, i, label, ha="center", va="center", fontsize=9 if n <= 6 else 7,
                        color=text_colour(image, T[i, j]))
    for k in range(n):
        ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="tab:blue", lw=2))
    hatch_cells(ax, zip(*np.nonzero(T < 0)), "not\nreached")
    cap = f" (cap: {max_steps} steps)" if max_steps else ""
    task_axes(ax, res.names, "Fine-tune cost T(i|j): SGD steps from source j's weights\n"
                             f"to target i's threshold; diagonal: from scratch{cap}")
    return save(fig, out / "finetune.png")


def rank_agreement(f):
    """Spearman with T of R and of each stored baseline: [(label, rho)], R first."""
    rows = [("R(i|j)", scalar(f, "analysis/spearman_R_T"))]
    rows += [(name, scalar(f, f"analysis/baselines/{name}/spearman_T")) for name in BASELINES
             if f"analysis/baselines/{name}" in f]
    return rows


def label_offsets(R, T):
    """Label offsets in points for scatter points, alternating above and below among points
    that share a T value (T is a multiple of eval_every, so ties are common)."""
    offsets = {}
    for t in np.unique(T):
        for k, idx in enumerate(sorted(np.nonzero(T == t)[0], key=lambda m: R[m])):
            offsets[idx] = (4, 4) if k % 2 == 0 else (4, -11)
    return [offsets[m] for m in range(len(T))]


def scatter_panel(ax, res):
    """R(i|j) against T(i|j) on a log axis, one colour per target, hollow = unresolved. Points
    are labelled j→i with task numbers; the legend gives the numbers."""
    use = res.resolved_reached()
    shown = res.off_diagonal() & np.isfinite(res.R) & (res.T > 0)
    colours = plt.get_cmap("tab10")
    i, j = np.nonzero(shown)
    R, T, se = res.R[i, j], res.T[i, j], res.stderr[i, j]
    for m, offset in enumerate(label_offsets(R, T)):
        c = colours(i[m] % 10)
        ax.errorbar(R[m], T[m], xerr=se[m], fmt="o", ms=7, color=c, ecolor=c,
                    mfc=c if use[i[m], j[m]] else "white", capsize=2)
        ax.annotate(f"{j[m] + 1}→{i[m] + 1}", (R[m], T[m]), xytext=offset,
                    textcoords="offset points", fontsize=8)
    for k, name in enumerate(res.names):
        ax.plot([], [], "o", color=colours(k % 10), label=f"{k + 1}: {short(name, 16)}")
    if (shown & ~use).any():
        ax.plot([], [], "o", color="0.4", mfc="white", label="|R| ≤ 3 stderr (not used)")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("R(i|j) [nats] (± stderr)")
    ax.set_ylabel("fine-tune steps T(i|j) (log)")
    off = res.off_diagonal()
    hidden = {"not reached": int((off & (res.T < 0)).sum()),
              "T = 0 (already at θ_i)": int((off & (res.T == 0)).sum()),
              "R = NaN": int((off & ~np.isfinite(res.R) & (res.T > 0)).sum())}
    note = ", ".join(f"{k}: {v}" for k, v in hidden.items() if v)
    ax.set_title("Each point: source j → target i (colour: target)"
                 + (f"\nnot shown — {note}" if note else ""), fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3,
              title="tasks", title_fontsize=8)
    ax.grid(alpha=0.3)


def verdict(rows):
    """One line: does R rank T better than every baseline?"""
    rho, baselines = rows[0][1], [b for _, b in rows[1:] if np.isfinite(b)]
    if not np.isfinite(rho):
        return "R's rank agreement is not available"
    if all(rho > b for b in baselines):
        return "R ranks T better than every baseline"
    return "a baseline ranks T as well as R or better"


def agreement_panel(ax, rows, pairs, pearson):
    """Bars of Spearman(x, T) for R and the baselines: does R rank the costs better?"""
    rhos = np.array([rho for _, rho in rows], dtype=float)
    y = np.arange(len(rows))[::-1]
    ax.barh(y, np.nan_to_num(rhos), color=["tab:red"] + ["0.6"] * (len(rows) - 1))
    ax.set_yticks(y, [f"{label}\n{fmt_corr(rho)}" for label, rho in rows])
    ax.set_xlim(-1, 1)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("Spearman correlation with T(i|j)")
    ax.set_title(f"{verdict(rows)}\n(pairs used: {pairs}; Pearson(R, log(1+T)) = {fmt_corr(pearson)})",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)


def fmt_corr(rho):
    """A correlation coefficient, or n/a."""
    return f"{rho:+.2f}" if np.isfinite(rho) else "n/a"


def r_vs_steps_figure(f, res, out):
    """Scatter of R against T beside the rank agreement of R and the baselines with T."""
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(12, 5.5), width_ratios=[3, 2],
                                   layout="constrained")
    scatter_panel(ax, res)
    pairs = int(scalar(f, "analysis/pairs_used", int(res.resolved_reached().sum())))
    agreement_panel(bars, rank_agreement(f), pairs, scalar(f, "analysis/pearson_R_logT"))
    rho = scalar(f, "analysis/spearman_R_T")
    fig.suptitle(f"Does R(i|j) predict the fine-tune cost T(i|j)?  Spearman(R, T) = {fmt_corr(rho)}")
    return save(fig, out / "r_vs_steps.png")


# ----------------------------------------------------------------------------- prediction

PREDICTION_MODELS = (("R", "R alone"), ("scratch_cost", "scratch cost"), ("loss_at_source", "loss at w*_j"),
                     ("target_complexity", "C(D_i)"), ("scratch_cost_R", "scratch cost + R"),
                     ("baselines", "all baselines"), ("baselines_R", "all baselines + R"))


def prediction_figure(f, out):
    """Cross-validated Spearman and RMS error of log(1+T) per model, with bootstrap intervals."""
    g = "analysis/prediction"
    models = [(key, label) for key, label in PREDICTION_MODELS if f"{g}/{key}/spearman_logT" in f]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    y = np.arange(len(models))
    for ax, stat, title in ((axes[0], "spearman_logT", "Spearman(predicted, log(1+T))"),
                            (axes[1], "rmse_logT", "RMS error of log(1+T)")):
        v = np.array([scalar(f, f"{g}/{k}/{stat}") for k, _ in models])
        lo = np.array([scalar(f, f"{g}/{k}/{stat}_lo") for k, _ in models])
        hi = np.array([scalar(f, f"{g}/{k}/{stat}_hi") for k, _ in models])
        colours = ["tab:red" if k.endswith("R") else "tab:grey" for k, _ in models]
        ax.barh(y, np.nan_to_num(v), color=colours, alpha=0.8)
        err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]).clip(min=0)
        ax.errorbar(np.nan_to_num(v), y, xerr=err, fmt="none", ecolor="black", capsize=3)
        ax.set_yticks(y, [label for _, label in models])
        ax.invert_yaxis()
        ax.set_title(title)
        ax.axvline(0, color="black", linewidth=0.8)
    adds = scalar(f, f"{g}/R_gain_over_scratch_cost/adds", 0) == 1
    gain = scalar(f, f"{g}/R_gain_over_scratch_cost/rmse_logT")
    targets = int(scalar(f, f"{g}/targets", 0))
    pairs = int(scalar(f, f"{g}/pairs", 0))
    fig.suptitle(f"Leave-one-target-out prediction ({pairs} pairs, {targets} targets; 95% bootstrap over targets): "
                 f"R {'adds' if adds else 'does not add'} to the scratch cost (RMS error -{fmt(gain)})")
    return save(fig, out / "prediction.png")


# ----------------------------------------------------------------------------- spectra

def broadened_density(nodes, weights, grid, width=0.1):
    """Gaussian-broadened density per decade of a quadrature rule, on a log10 grid."""
    logs = np.log10(nodes)[:, None]
    kernel = np.exp(-0.5 * ((grid[None, :] - logs) / width) ** 2) / (width * np.sqrt(2 * np.pi))
    return weights @ kernel


def spectra_figure(f, names, out):
    """Top-k eigenvalues per task, and each task's smoothed spectral density of G (nodes ≤ 0,
    from a clipped Hessian, are drawn at the smallest positive node)."""
    fig, (top, esd) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    spectra = [(t, f[f"spectra/{t}"]) for t in names if f"spectra/{t}/esd_nodes" in f]
    all_nodes = np.concatenate([g["esd_nodes"][()] for _, g in spectra])
    positive = all_nodes[all_nodes > 0]
    floor, top_node = (positive.min(), positive.max()) if positive.size else (1e-6, 1.0)
    grid = np.linspace(np.log10(floor) - 0.5, np.log10(top_node) + 0.5, 600)
    peak = 0.0
    for k, (task, g) in enumerate(spectra):
        c = plt.get_cmap("tab10")(k % 10)
        ev = g["eigenvalues"][()]
        top.semilogy(np.arange(1, ev.size + 1), ev, "o-", color=c, label=task)
        nodes, weights = g["esd_nodes"][()], g["esd_weights"][()]
        density = broadened_density(np.maximum(nodes, floor), weights, grid)
        esd.plot(10 ** grid, density, color=c, label=task)
        peak = max(peak, density.max())
        esd.plot(ev, np.full(ev.size, 1.5e-6), "|", color=c, ms=12)
    top.xaxis.set_major_locator(MaxNLocator(integer=True))
    plain_log_ticks(top.yaxis)
    top.set_xlabel("index k (descending)")
    top.set_ylabel("eigenvalue λ_k of G (log)")
    top.set_title("Top-k curvature eigenvalues (exact, SLEPc)")
    top.legend(fontsize=8)
    top.grid(alpha=0.3, which="both")
    logdet_c = f.attrs.get("logdet_c")
    if logdet_c:
        esd.axvline(1 / logdet_c, color="0.3", ls="--", lw=1, label="λ = 1/c: log(1 + cλ) ≈ cλ below")
    esd.set_xscale("log")
    esd.set_yscale("log")
    esd.set_ylim(1e-6, 3 * peak)
    esd.set_xlabel("eigenvalue λ of G (log)")
    esd.set_ylabel("density per decade (log)")
    esd.set_title("Spectral density of G (SLQ, Gaussian-broadened; ticks: top-k)")
    esd.legend(fontsize=8)
    esd.grid(alpha=0.3, which="both")
    return save(fig, out / "spectra.png")


# ----------------------------------------------------------------------------- planned groups

def log_linear(fit, x):
    """τ of a fit log τ = p0 + p1·x (natural log), at x."""
    return np.exp(fit["params"][0] + fit["params"][1] * x)


def tau_panel(ax, x, steps, colour, label):
    """Converged runs as points; runs that did not converge (NaN steps) as x at the top."""
    ok = np.isfinite(steps)
    ax.plot(x[ok], steps[ok], "o", color=colour, alpha=0.8, label=label)
    if (~ok).any():
        ax.plot(x[~ok], np.full((~ok).sum(), 0.97), "x", color=colour, ms=8,
                transform=ax.get_xaxis_transform(), label="not converged")


def fit_line(ax, fit, x, colour):
    """The fitted τ(x) over the range of x, R² in its label (only the label if it failed)."""
    finite = x[np.isfinite(x)]
    xx = np.linspace(finite.min(), finite.max(), 100) if fit["ok"] and finite.size else []
    ax.plot(xx, log_linear(fit, np.asarray(xx)), "-", color=colour, label=fit_label(fit))


def convergence_panels(f):
    """(title, x label, draw function) for each sweep present under /convergence."""
    panels = []
    fits = f["convergence/fits"] if "convergence/fits" in f else {}

    def sweep(name, xname, title, xlabel, fit_name):
        g = f[f"convergence/{name}"]
        x, steps = columns(g, xname, "steps")

        def draw(ax):
            tau_panel(ax, x, steps, "tab:blue", "runs (one per seed)")
            if fit_name in fits:
                fit_line(ax, read_fit(fits[fit_name]), x, "tab:red")
        panels.append((title, xlabel, draw))

    if "convergence/random_labels" in f:
        sweep("random_labels", "n_random", "Random labels: τ vs number of random labels",
              "samples with random labels n_random", "log_tau_vs_random_labels")
    if "convergence/batch_size" in f:
        sweep("batch_size", "B", "Batch size: τ vs B (Kramers fit)", "batch size B", "kramers")
    if "convergence/architecture" in f:
        g = f["convergence/architecture"]
        arch, C, steps = columns(g, "arch", "C", "steps")

        def draw(ax):
            for k, a in enumerate(dict.fromkeys(arch)):
                colour, sel = plt.get_cmap("tab10")(k % 10), arch == a
                tau_panel(ax, C[sel], steps[sel], colour, a)
                if f"log_tau_vs_C/{a}" in fits:
                    fit_line(ax, read_fit(fits[f"log_tau_vs_C/{a}"]), C[sel], colour)
        panels.append(("Architectures: τ vs complexity C", "complexity C [nats]", draw))
    return panels


def convergence_figure(f, out):
    """One panel per convergence sweep: τ (log) against the swept quantity, with the fits."""
    panels = convergence_panels(f)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.5), squeeze=False,
                             layout="constrained")
    for ax, (title, xlabel, draw) in zip(axes[0], panels):
        draw(ax)
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("convergence time τ [SGD steps] (log)")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Convergence time τ: points are runs, lines are fits log τ = a + b·x")
    return save(fig, out / "convergence.png")


def potential_figure(f, out):
    """The potential series against epoch, and measured ½v² against each fit's prediction."""
    g = f["potential"]
    epoch, U, S_logdet, S_trace, half_v2 = columns(g, "epoch", "U", "S_logdet", "S_trace", "half_v2")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), layout="constrained")
    (u_ax, s_ax), (v_ax, fit_ax) = axes
    u_ax.plot(epoch, U, "o-", color="tab:blue")
    u_ax.set_title("U against epoch")
    u_ax.set_ylabel("U")
    s_ax.plot(epoch, S_logdet, "o-", color="tab:green", label="S from log det")
    trace_ax = s_ax.twinx()
    trace_ax.plot(epoch, S_trace, "s--", color="tab:purple", label="S from trace")
    s_ax.set_ylabel("S_logdet", color="tab:green")
    trace_ax.set_ylabel("S_trace", color="tab:purple")
    s_ax.set_title("S from the log det (left) and from the trace (right)")
    v_ax.plot(epoch, half_v2, "o-", color="tab:orange")
    v_ax.set_title("½v² against epoch")
    v_ax.set_ylabel("½v²")
    for ax in (u_ax, s_ax, v_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fit_ax.set_title("½v² = E − a·U − b·S: measured vs fit")
    for name, S, colour in (("logdet", S_logdet, "tab:green"), ("trace", S_trace, "tab:purple")):
        if f"potential/fits/{name}" in f:
            fit = read_fit(f[f"potential/fits/{name}"])
            E, a, b = fit["params"]
            label = (f"S = S_{name}: R² = {fit['r2']:.3f}\nE = {E:.3g}, a = {a:.3g}, b = {b:.3g}"
                     if fit["ok"] else f"S = S_{name}: no fit")
            fit_ax.plot(E - a * U - b * S, half_v2, "o", color=colour, label=label)
    lo, hi = np.nanmin(half_v2), np.nanmax(half_v2)
    fit_ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="measured = predicted")
    fit_ax.set_xlabel("predicted ½v²")
    fit_ax.set_ylabel("measured ½v²")
    fit_ax.legend(fontsize=8)
    fit_ax.grid(alpha=0.3)
    fig.suptitle("Potential: U, S and ½v² per epoch, and the fits ½v² = E − a·U − b·S")
    return save(fig, out / "potential.png")


def critical_period_panel(ax, K, y, ylabel, colour):
    """Per-seed values against K, their mean, and the no-deficit (K = 0) level."""
    ax.plot(K, y, "o", color=colour, alpha=0.5, label="runs (one per seed)")
    ks = np.unique(K[np.isfinite(K)])
    means = np.array([np.nanmean(y[K == k]) for k in ks])
    ax.plot(ks, means, "-", color=colour, lw=2, label="mean over seeds")
    if (ks == 0).any():
        ax.axhline(means[ks == 0][0], color="0.3", ls="--", lw=1, label="no deficit (K = 0)")
    ax.set_xlabel("deficit length K (0 = no deficit)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def critical_period_figure(f, out):
    """Test accuracy and complexity C against the deficit length K."""
    K, accuracy, C = columns(f["critical_period"], "K", "test_accuracy", "C")
    accuracy[accuracy < 0] = np.nan  # -1: not measured
    fig, (acc_ax, c_ax) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    critical_period_panel(acc_ax, K, accuracy, "test accuracy", "tab:blue")
    acc_ax.set_title("Final test accuracy after a deficit of length K")
    critical_period_panel(c_ax, K, C, "complexity C [nats]", "tab:red")
    c_ax.set_title("Complexity C of the final solution")
    fig.suptitle("Critical period: does an early deficit leave a lasting mark?")
    return save(fig, out / "critical_period.png")


# ----------------------------------------------------------------------------- main

def draw_all(f, out):
    """Every figure the file supports; returns the paths written. An experiment's file may hold
    no tasks (empty /tasks/name and a 0 x 0 R): then only the experiment's figures are drawn."""
    paths = []
    names = task_names(f) if "tasks/name" in f else []
    if names and "reachability/R" in f:
        res = read_result(f)
        paths.append(reachability_figure(res, out))
        if res.T is not None:
            max_steps = job_config(f).get("finetune", {}).get("max_steps")
            paths.append(finetune_figure(res, max_steps, out))
            paths.append(r_vs_steps_figure(f, res, out))
            if "analysis/prediction" in f:
                paths.append(prediction_figure(f, out))
    if any(f"spectra/{t}/esd_nodes" in f for t in names):
        paths.append(spectra_figure(f, names, out))
    if any(f"convergence/{s}" in f for s in ("random_labels", "batch_size", "architecture")):
        paths.append(convergence_figure(f, out))
    if "potential" in f:
        paths.append(potential_figure(f, out))
    if "critical_period" in f:
        paths.append(critical_period_figure(f, out))
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("result", type=Path, help="taskreach result file (.h5)")
    parser.add_argument("--out", type=Path, help="output directory (default: RESULT_figures/ beside it)")
    args = parser.parse_args()
    out = args.out or figures_dir(args.result)
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(args.result, "r") as f:
        for path in draw_all(f, out):
            print(path)


if __name__ == "__main__":
    main()
