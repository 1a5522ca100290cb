"""Reading conventions shared by the analysis scripts (report.py, figures.py, scaling.py).

A taskreach result is one HDF5 file. Matrices are indexed [i][j] = target task i (row), source
task j (column); strings are stored as bytes; /finetune is absent when the job disabled
fine-tuning, and T(i|j) = -1 there means "not reached within max_steps"."""
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def text(value):
    """A stored string (bytes, numpy bytes or str) as str."""
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def strings(dataset):
    """A 1-D string dataset as a list of str."""
    return [text(v) for v in dataset[()]]


def task_names(f):
    """The task names of a result, in job order."""
    return strings(f["tasks/name"])


def scalar(f, path, default=float("nan")):
    """The scalar dataset at `path` as a Python number, or `default` when it is absent."""
    return f[path][()].item() if path in f else default


def job_config(f):
    """The job file stored in the root attribute `config`, parsed; {} if absent or unreadable."""
    try:
        return tomllib.loads(text(f.attrs["config"]))
    except (KeyError, tomllib.TOMLDecodeError):
        return {}


# The bits of /reachability/flags.
FLAG_EXCLUDED = 1            # a job of the entry diverged or did not converge: left out
FLAG_EPS_NOT_CONVERGED = 2   # fewer top-k eigenpairs converged (kept)
FLAG_SEED_ERROR_UNKNOWN = 4  # one seed: stderr is NaN
FLAG_RESOLVED = 8            # |R| > t·stderr
FLAG_NEGATIVE = 16           # R < -t·stderr: an optimisation failure
FLAG_UNSTABLE_TARGET = 32    # theta_i unstable: T(i|.) left out
FLAG_QUADRATURE = 64         # the paired difference failed its m/2 quadrature check (set with EXCLUDED)


@dataclass
class Result:
    """The matrices that every analysis of a result starts from."""
    names: list
    R: np.ndarray          # R(i|j), nats
    stderr: np.ndarray     # combined standard error of R
    T: np.ndarray | None   # fine-tune steps T(i|j), -1 = not reached; None without /finetune
    flags: np.ndarray | None = None  # /reachability/flags bits (FLAG_*); None in older files

    @property
    def n(self):
        return len(self.names)

    def off_diagonal(self):
        """Mask of the pairs i != j."""
        return ~np.eye(self.n, dtype=bool)

    def resolved_reached(self):
        """The pairs that /analysis correlates: off-diagonal, reached (T >= 0), no job or
        threshold left out, and resolved (|R| > t·stderr, the `resolved` flag; files without
        flags: |R| > 3 stderr). All False without fine-tuning."""
        if self.T is None:
            return np.zeros((self.n, self.n), dtype=bool)
        if self.flags is not None:
            trusted = (self.flags & (FLAG_EXCLUDED | FLAG_UNSTABLE_TARGET)) == 0
            return self.off_diagonal() & (self.T >= 0) & trusted & ((self.flags & FLAG_RESOLVED) != 0)
        with np.errstate(invalid="ignore"):
            return (self.off_diagonal() & (self.T >= 0) & np.isfinite(self.R)
                    & (np.abs(self.R) > 3 * self.stderr))


def read_result(f):
    """The Result of an open h5py.File."""
    return Result(names=task_names(f),
                  R=f["reachability/R"][()],
                  stderr=f["reachability/stderr"][()],
                  T=f["finetune/steps"][()] if "finetune/steps" in f else None,
                  flags=f["reachability/flags"][()] if "reachability/flags" in f else None)


def figures_dir(result_path):
    """Where figures.py writes the figures of a result by default: RESULT_figures/ beside it."""
    path = Path(result_path)
    return path.with_name(path.stem + "_figures")
