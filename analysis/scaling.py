#!/usr/bin/python3
"""Parallel scaling of taskreach runs and of Google Benchmark results.

usage: /usr/bin/python3 analysis/scaling.py FILES... [--out DIR]

FILES may mix taskreach result files (.h5) and Google Benchmark JSON files
(--benchmark_format=json or --benchmark_out=FILE). Output goes to DIR (default: the current
directory); each written path is printed.

Result files: the wall time of a run is its root attribute `schedule_seconds`, its ranks
`mpi_ranks`, its size the number of tasks N and the number of jobs it scheduled (/jobs: every
training per seed, scratch run and fine-tune; without /jobs, N + N(N-1)/2 + N(N-1) per seed).
Resumed runs (jobs_reused > 0) and files without schedule_seconds are skipped with a note.
Runs of the same job and N on different rank counts P give strong scaling: speed-up
S(P) = T(P0)/T(P) against the smallest P0 present and efficiency S·P0/P (= S/P when P0 = 1).
Runs of any N whose jobs per rank agree within 25% and that use at least two rank counts give
weak scaling: efficiency T(P0)/T(P). Writes scaling.md (the tables) and scaling.png (speed-up
and efficiency against ranks, with the ideal lines).

Benchmark JSON: benchmarks are grouped into families by name without the trailing argument
(`BM_x/2`, `BM_x/ranks:2`; modifiers such as /real_time or /iterations:3 are ignored); the
argument, or a `ranks` counter when the benchmark reports one, is the count compared across
entries; the same benchmark from several files without distinct counts is kept apart per
file. With repetitions the median (else mean) aggregate is used. Writes benchmarks.md
(each family's real times and their ratio to the family's first entry) and, with two or more
entries in a family, benchmarks.png."""
import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from common import job_config, task_names
from plotting import plain_log_ticks, plt, save

WEAK_TOLERANCE = 1.25
TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
MODIFIER = re.compile(r"^(real_time|process_time|manual_time"
                      r"|(iterations|repeats|min_time|min_warmup_time):[\d.e+-]+s?)$")
ARGUMENT = re.compile(r"^(?:(\w+):)?(\d+)$")


# ----------------------------------------------------------------------------- result files

@dataclass
class Run:
    """One taskreach run: what it computed, on how many ranks, in how long."""
    file: Path
    job: str
    N: int
    ranks: int
    jobs: int
    seconds: float

    @property
    def jobs_per_rank(self):
        return self.jobs / self.ranks


def job_count(f):
    """The jobs a run scheduled: /jobs when present, else N + N(N-1)/2 + N(N-1) per seed."""
    if "jobs/name" in f:
        return len(f["jobs/name"])
    n = len(task_names(f))
    return (n + n * (n - 1) // 2 + n * (n - 1)) * int(f.attrs.get("seeds", 1))


def read_run(path):
    """The Run of a result file; None (with a note on stderr) if it has no timing."""
    with h5py.File(path, "r") as f:
        if "schedule_seconds" not in f.attrs:
            print(f"{path}: no schedule_seconds attribute (an older taskreach?); skipped",
                  file=sys.stderr)
            return None
        if f.attrs.get("jobs_reused", 0) > 0:
            print(f"{path}: resumed run ({f.attrs['jobs_reused']} jobs reused), its time covers "
                  "only part of the work; skipped", file=sys.stderr)
            return None
        return Run(file=path, job=job_config(f).get("name", path.stem), N=len(task_names(f)),
                   ranks=int(f.attrs["mpi_ranks"]), jobs=job_count(f),
                   seconds=float(f.attrs["schedule_seconds"]))


def base_time(runs):
    """The smallest rank count among runs and the mean time of the runs that used it."""
    p0 = min(r.ranks for r in runs)
    return p0, float(np.mean([r.seconds for r in runs if r.ranks == p0]))


def strong_scaling(runs):
    """{(job, N): [(run, speed-up, efficiency)]} over the runs of the same job and size."""
    groups = {}
    for run in sorted(runs, key=lambda r: (r.job, r.N, r.ranks)):
        groups.setdefault((run.job, run.N), []).append(run)
    table = {}
    for key, group in groups.items():
        p0, t0 = base_time(group)
        table[key] = [(r, t0 / r.seconds, t0 * p0 / (r.seconds * r.ranks)) for r in group]
    return table


def jobs_per_rank_clusters(runs):
    """Runs grouped so that each group's jobs per rank lie within WEAK_TOLERANCE of its smallest."""
    clusters = []
    for run in sorted(runs, key=lambda r: r.jobs_per_rank):
        if clusters and run.jobs_per_rank <= WEAK_TOLERANCE * clusters[-1][0].jobs_per_rank:
            clusters[-1].append(run)
        else:
            clusters.append([run])
    return clusters


def weak_scaling(runs):
    """[[(run, efficiency)]]: series of runs with about the same jobs per rank on ≥ 2 rank counts."""
    series = []
    for cluster in jobs_per_rank_clusters(runs):
        if len({r.ranks for r in cluster}) >= 2:
            p0, t0 = base_time(cluster)
            series.append([(r, t0 / r.seconds) for r in sorted(cluster, key=lambda r: r.ranks)])
    return series


def markdown(header, rows):
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def scaling_tables(strong, weak):
    """The strong and (if any) weak scaling tables as markdown."""
    rows = [(job, r.N, r.ranks, f"{r.jobs_per_rank:.1f}", f"{r.seconds:.2f}", f"{s:.2f}", f"{e:.2f}",
             r.file.name) for (job, _), group in strong.items() for r, s, e in group]
    text = "## Strong scaling (same job and N)\n\n" + markdown(
        ["job", "N", "ranks", "jobs/rank", "seconds", "speed-up", "efficiency", "file"], rows)
    if weak:
        rows = [(f"{series[0][0].jobs_per_rank:.1f}", r.job, r.N, r.ranks, f"{r.jobs_per_rank:.1f}",
                 f"{r.seconds:.2f}", f"{e:.2f}", r.file.name) for series in weak for r, e in series]
        text += "\n\n## Weak scaling (about the same jobs per rank)\n\n" + markdown(
            ["series", "job", "N", "ranks", "jobs/rank", "seconds", "efficiency", "file"], rows)
    return text + "\n"


def rank_axis(ax, ranks):
    """A log2 axis of rank counts with a tick at each count present."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ranks), [str(p) for p in sorted(ranks)])
    ax.set_xlabel("MPI ranks P")
    ax.grid(alpha=0.3)


def scaling_plot(strong, weak, path):
    """Speed-up and efficiency against ranks, with the ideal lines (groups of one rank count,
    which say nothing about scaling, are left out); returns the path."""
    fig, (sp, eff) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    ranks = {r.ranks for group in strong.values() for r, _, _ in group}
    for (job, N), group in strong.items():
        P = [r.ranks for r, _, _ in group]
        if len(set(P)) < 2:
            continue
        sp.plot(P, [s for _, s, _ in group], "o-", label=f"{job} (N = {N})")
        eff.plot(P, [e for _, _, e in group], "o-", label=f"strong: {job} (N = {N})")
    for series in weak:
        eff.plot([r.ranks for r, _ in series], [e for _, e in series], "s--",
                 label=f"weak: ≈ {series[0][0].jobs_per_rank:.0f} jobs/rank")
    p = np.array(sorted(ranks))
    sp.plot(p, p / p[0], "k:", label="ideal (S = P/P0)")
    eff.axhline(1, color="black", ls=":", label="ideal")
    for ax in (sp, eff):
        rank_axis(ax, ranks)
        ax.legend(fontsize=8)
    sp.set_ylabel("speed-up S = T(P0) / T(P)")
    sp.set_title("Strong scaling: speed-up over the smallest run")
    eff.set_ylabel("parallel efficiency")
    eff.set_ylim(0, max(1.1, eff.get_ylim()[1]))
    eff.set_title("Efficiency (1 = perfect)")
    fig.suptitle("taskreach wall time (schedule_seconds) against MPI ranks")
    return save(fig, path)


# ----------------------------------------------------------------------------- benchmarks

@dataclass
class Bench:
    """One benchmark's real time, its family and the count it is compared by."""
    family: str
    label: str             # the argument as written (e.g. "2", "ranks:2"); "" if none
    count: float | None    # its number
    seconds: float
    file: Path


def split_name(name, ranks=None):
    """(family, argument label, count) of a benchmark name, modifiers dropped. With a `ranks`
    counter the whole name is the family; otherwise a trailing argument (/N or /label:N) is."""
    parts = [p for p in name.split("/") if not MODIFIER.match(p)]
    if ranks is not None:
        return "/".join(parts), f"ranks:{ranks:g}", float(ranks)
    match = ARGUMENT.match(parts[-1]) if len(parts) > 1 else None
    if match:
        return "/".join(parts[:-1]), parts[-1], float(match.group(2))
    return "/".join(parts), "", None


def representative(entries):
    """The real time in seconds of one benchmark: median or mean aggregate, else the mean run."""
    by_kind = {e.get("aggregate_name"): e for e in entries if e.get("run_type") == "aggregate"}
    chosen = [by_kind[k] for k in ("median", "mean") if k in by_kind][:1] or \
             [e for e in entries if e.get("run_type") != "aggregate"]
    return float(np.mean([e["real_time"] * TIME_UNITS[e.get("time_unit", "ns")] for e in chosen]))


def read_benchmarks(path):
    """The Bench entries of a Google Benchmark JSON file, in file order."""
    try:
        entries = json.loads(path.read_text())["benchmarks"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}: neither a taskreach result nor Google Benchmark JSON ({e})")
    runs = {}
    for e in entries:
        runs.setdefault(e.get("run_name", e["name"]), []).append(e)
    return [Bench(*split_name(name, group[0].get("ranks")), representative(group), path)
            for name, group in runs.items()]


def families(benches):
    """{family: [Bench]}, sorted by count. A family of several entries that lack distinct counts
    (the same benchmark from several files without a `ranks` counter) is split by file, each
    part in input order."""
    groups = {}
    for b in benches:
        groups.setdefault(b.family, []).append(b)
    out = {}
    for family, group in groups.items():
        counts = [b.count for b in group]
        if None not in counts and len(set(counts)) == len(counts):
            out[family] = sorted(group, key=lambda b: b.count)
        elif len(group) == 1:
            out[family] = group
        else:
            for b in group:
                out.setdefault(f"{family} [{b.file.name}]", []).append(b)
    return out


def human_time(seconds):
    """A duration with a unit that keeps it readable."""
    for unit in ("s", "ms", "us", "ns"):
        if seconds >= TIME_UNITS[unit] or unit == "ns":
            return f"{seconds / TIME_UNITS[unit]:.3g} {unit}"


def benchmark_table(groups):
    """Each family's times and their ratio to its first entry, as markdown."""
    rows = [(family, b.label or "-", human_time(b.seconds), f"{b.seconds / group[0].seconds:.3f}",
             b.file.name) for family, group in groups.items() for b in group]
    return "## Benchmarks (real time; ratio = time / family's first entry)\n\n" + markdown(
        ["family", "argument", "real time", "ratio", "file"], rows) + "\n"


def benchmark_plot(groups, path):
    """Time relative to the first entry against the argument, one line per family with two or
    more entries; returns the path."""
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    xs = set()
    for family, group in groups.items():
        if len(group) >= 2:
            x = [b.count if b.count is not None else k + 1 for k, b in enumerate(group)]
            ax.plot(x, [b.seconds / group[0].seconds for b in group], "o-", label=family)
            xs.update(x)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(xs), [f"{x:g}" for x in sorted(xs)])
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.axhline(1, color="black", ls=":", lw=1)
    ax.set_xlabel("argument (ranks, threads or size; entry number if none)")
    ax.set_ylabel("real time / first entry's (log)")
    ax.set_title("Benchmark families: time relative to their first entry")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


# ----------------------------------------------------------------------------- main

def write(path, text):
    """Write text to path and print the path."""
    path.write_text(text)
    print(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="result .h5 and benchmark .json files")
    parser.add_argument("--out", type=Path, default=Path("."), help="output directory (default: .)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = [p for p in args.files if h5py.is_hdf5(p)]
    benches = [b for p in args.files if p not in results for b in read_benchmarks(p)]
    runs = [r for r in map(read_run, results) if r is not None]
    if runs:
        strong, weak = strong_scaling(runs), weak_scaling(runs)
        text = scaling_tables(strong, weak)
        print(text)
        write(args.out / "scaling.md", text)
        print(scaling_plot(strong, weak, args.out / "scaling.png"))
    if benches:
        groups = families(benches)
        text = benchmark_table(groups)
        print(text)
        write(args.out / "benchmarks.md", text)
        if any(len(g) >= 2 for g in groups.values()):
            print(benchmark_plot(groups, args.out / "benchmarks.png"))


if __name__ == "__main__":
    main()
