#!/usr/bin/env python3
"""Writes a reachability job over N Fashion-MNIST-derived tasks (N <= 16), for the memory
scaling runs of the README (peak RSS per rank against N).

  scripts/scaling_tasks.py N OUT.toml [--n 2000] [--cheap]

--cheap: a linear model, one epoch, a short polish and a small curvature solve, so that a whole
run over N = 16 (136 sample sets) takes minutes: what grows with N is the data and the plan,
not the per-job work, and that is what the run measures."""
import argparse

TASKS = [
    ("fashion", []),
    ("inverted", [{"type": "invert"}]),
    ("blur1", [{"type": "blur", "sigma": 1.0}]),
    ("blur2", [{"type": "blur", "sigma": 2.0}]),
    ("noise03", [{"type": "noise", "sigma": 0.3}]),
    ("lower", [{"type": "class_subset", "classes": [0, 1, 2, 3, 4]}]),
    ("upper", [{"type": "class_subset", "classes": [5, 6, 7, 8, 9]}]),
    ("even", [{"type": "class_subset", "classes": [0, 2, 4, 6, 8]}]),
    ("odd", [{"type": "class_subset", "classes": [1, 3, 5, 7, 9]}]),
    ("blur3", [{"type": "blur", "sigma": 3.0}]),
    ("noise06", [{"type": "noise", "sigma": 0.6}]),
    ("inverted-blur1", [{"type": "invert"}, {"type": "blur", "sigma": 1.0}]),
    ("lower-inverted", [{"type": "class_subset", "classes": [0, 1, 2, 3, 4]}, {"type": "invert"}]),
    ("upper-blur2", [{"type": "class_subset", "classes": [5, 6, 7, 8, 9]}, {"type": "blur", "sigma": 2.0}]),
    ("even-noise03", [{"type": "class_subset", "classes": [0, 2, 4, 6, 8]}, {"type": "noise", "sigma": 0.3}]),
    ("odd-inverted", [{"type": "class_subset", "classes": [1, 3, 5, 7, 9]}, {"type": "invert"}]),
]


def toml_value(v):
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return '"' + v + '"'
    return repr(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("N", type=int)
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--cheap", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.N <= len(TASKS):
        ap.error(f"N: expected 1..{len(TASKS)}")
    L = [f'name = "scaling-N{a.N}"', "seed = 1", "ranks_per_task = 1", f"n_per_task = {a.n}", ""]
    if a.cheap:
        L += ["[model]", 'arch = "linear"', "", "[train]", "epochs = 1", "batch_size = 100", "polish_iters = 50",
              "grad_tol = 1e-3", "seeds = 1", "", "[finetune]", "enabled = false", "",
              "[complexity]", "top_k = 5", "probes = 4", "lanczos_steps = 10", "lanczos_max = 10", ""]
    else:
        L += ["[model]", 'arch = "mlp"', "hidden = [32]", "", "[train]", "epochs = 20", "batch_size = 50",
              "polish_iters = 8000", "seeds = 2", "", "[complexity]", "lambda2 = 0.25", ""]
    L += ["[[sources]]", 'name = "fashion"', 'format = "idx"',
          'train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"',
          'train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"',
          'test_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"',
          'test_labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"', ""]
    for name, tr in TASKS[: a.N]:
        L += ["[[tasks]]", f'name = "{name}"', 'source = "fashion"']
        if tr:
            L.append("transforms = [ " + ", ".join(
                "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in t.items()) + " }" for t in tr) + " ]")
        L.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
