"""Matplotlib settings and helpers shared by figures.py and scaling.py (Agg backend, 120 dpi)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)
from matplotlib.ticker import LogFormatter  # noqa: E402

DPI = 120


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, written as plain numbers (70, 0.8, 1e+05)."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def plain_log_ticks(axis):
    """Plain numbers on a log axis, minor ticks labelled too when it spans under two decades
    (the default labels only powers of ten)."""
    formatter = PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5))
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(formatter)


def save(fig, path):
    """Write `fig` to path at DPI, close it and return the path."""
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
