#!/usr/bin/python3
"""Seed corpora for the fuzz targets, cut from the packaged real data.

usage: make_seeds.py OUT_DIR

Writes OUT_DIR/{idx,cifar,csv,job}/*, each file one input in the layout of
tests/fuzz/harness.hpp. Inputs stay small (a few records, at most a few KiB): the big files are
cut down to a handful of images or rows, with headers that say so, plain and gzipped.
"""
import glob
import gzip
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FASHION = "/usr/share/datasets/fashion-mnist"
DIGITS_CSV = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
DATA = os.environ.get("TASKREACH_DATA") or os.path.expanduser("~/.cache/taskreach/data")


def gz(b):
    return gzip.compress(b, compresslevel=6, mtime=0)


def idx_cut(path, n):
    """The first n items of an IDX file, with the count in its header set to n."""
    with gzip.open(path, "rb") as f:
        magic = f.read(4)
        rank = magic[3]
        dims = list(struct.unpack(">" + "I" * rank, f.read(4 * rank)))
        item = 1
        for d in dims[1:]:
            item *= d
        body = f.read(n * item)
    return magic + struct.pack(">" + "I" * rank, n, *dims[1:]) + body, dims, body


def idx_input(flags, classes, images, labels):
    return bytes([flags, classes]) + struct.pack("<H", len(images)) + images + labels


def cifar_input(mode, classes, batches):
    split = len(batches[0]) if len(batches) > 1 else 0
    return bytes([mode, classes]) + struct.pack("<H", split) + b"".join(batches)


def csv_input(label_column, flags, classes, skip, scale, shape, text):
    head = struct.pack("<bBBB", label_column, flags, classes, skip) + struct.pack("<d", scale)
    return head + struct.pack("<qqq", *shape) + text


def main():
    out = sys.argv[1]
    seeds = {t: [] for t in ("idx", "cifar", "csv", "job")}

    # IDX: Fashion-MNIST (train and t10k) and the cached MNIST digits, a few images each.
    pairs = [(f"{FASHION}/train-images-idx3-ubyte.gz", f"{FASHION}/train-labels-idx1-ubyte.gz", "fashion"),
             (f"{FASHION}/t10k-images-idx3-ubyte.gz", f"{FASHION}/t10k-labels-idx1-ubyte.gz", "fashion-t10k"),
             (f"{DATA}/mnist/train-images-idx3-ubyte.gz", f"{DATA}/mnist/train-labels-idx1-ubyte.gz", "mnist")]
    fashion_images = fashion_labels = None
    for img, lab, name in pairs:
        if not (os.path.exists(img) and os.path.exists(lab)):
            continue
        images, _, _ = idx_cut(img, 3)
        labels, _, _ = idx_cut(lab, 3)
        seeds["idx"] += [(f"{name}-3", idx_input(0, 10, images, labels)),
                         (f"{name}-3-gz", idx_input(0, 10, gz(images), gz(labels))),
                         (f"{name}-3-transpose-undeclared", idx_input(1, 0, images, labels))]
        if fashion_images is None:
            fashion_images, fashion_labels = idx_cut(img, 4)[2], idx_cut(lab, 4)[2]
            # The real header (60,000 items) over three images: a truncated file.
            with gzip.open(img, "rb") as f:
                real_head = f.read(16)
            seeds["idx"].append((f"{name}-truncated", idx_input(0, 10, real_head + images[16:], labels)))
    # A tiny hand-made pair: 2 images of 2x3.
    tiny = struct.pack(">IIII", 0x803, 2, 2, 3) + bytes(range(12))
    seeds["idx"].append(("tiny-2x3", idx_input(0, 0, tiny, struct.pack(">II", 0x801, 2) + b"\x00\x01")))

    # CIFAR: records in the documented layout (label byte(s), then R, G, B planes of 32x32),
    # made from Fashion-MNIST images centred in 32x32 and repeated over the three planes.
    def plane(k):
        p = bytearray(32 * 32)
        for r in range(28):
            p[(r + 2) * 32 + 2:(r + 2) * 32 + 30] = fashion_images[k * 784 + r * 28:k * 784 + r * 28 + 28]
        return bytes(p) * 3

    if fashion_images is not None:
        rec10 = [bytes([fashion_labels[k]]) + plane(k) for k in range(2)]
        rec100 = [bytes([fashion_labels[k] % 20, 10 * fashion_labels[k] + k]) + plane(k) for k in range(2)]
        seeds["cifar"] += [("cifar10-2", cifar_input(0, 0, [rec10[0] + rec10[1]])),
                           ("cifar10-1+1", cifar_input(0, 10, rec10)),
                           ("cifar10-2-gz", cifar_input(0, 0, [gz(rec10[0] + rec10[1])])),
                           ("cifar100-fine-2", cifar_input(1, 0, [rec100[0] + rec100[1]])),
                           ("cifar100-coarse-1+1-gz", cifar_input(2, 0, [gz(rec100[0]), gz(rec100[1])])),
                           ("cifar10-cut", cifar_input(0, 0, [rec10[0] + rec10[1][:100]]))]

    # CSV: the first rows of the sklearn digits (64 features, label last, 0..16).
    with gzip.open(DIGITS_CSV, "rb") as f:
        rows = f.read().splitlines()[:4]
    digits = b"\n".join(rows) + b"\n"
    seeds["csv"] += [("digits-4", csv_input(-1, 0, 10, 0, 16.0, (1, 1, 1), digits)),
                     ("digits-4-shape", csv_input(-1, 2, 10, 0, 16.0, (1, 8, 8), digits)),
                     ("digits-4-gz", csv_input(-1, 2, 0, 0, 16.0, (1, 8, 8), gz(digits))),
                     ("digits-header", csv_input(-1, 0, 0, 1, 16.0, (1, 1, 1), b"# header\n" + digits))]
    # UCI letter-recognition style: the letter first, then the features.
    letters = b"".join(bytes([65 + i]) + b"," + b",".join(r.split(b",")[:16]) + b"\r\n"
                       for i, r in enumerate(rows))
    seeds["csv"].append(("letters-4", csv_input(0, 1, 26, 0, 15.0, (1, 1, 1), letters)))

    # Job files: the project's own (demo, tiny, the rejected ones of the e2e tests), and one
    # that uses every format and every transform.
    for path in sorted(glob.glob(f"{ROOT}/jobs/*.toml") + glob.glob(f"{ROOT}/tests/e2e/bad/*.toml")):
        with open(path, "rb") as f:
            seeds["job"].append(("job-" + os.path.basename(path)[:-5], f.read()))
    seeds["job"].append(("job-every-format", f"""name = "every"
seed = 3
input_shape = [1, 8, 8]
[model]
arch = "cnn"
channels = [4]
[train]
steps = 10
weight_decay = 0.001
schedule = "step"
milestones = [5, 8]
[finetune]
enabled = false
[complexity]
logdet_scale = "paper"
samples = 50
[[sources]]
name = "digits"
format = "csv"
train_files = "{DIGITS_CSV}"
shape = [1, 8, 8]
scale = 16
test_fraction = 0.2
[[sources]]
name = "c10"
format = "cifar10"
train_files = ["{DIGITS_CSV}"]
fit = "pad"
[[sources]]
name = "c100"
format = "cifar100"
label = "coarse"
train_files = "{DIGITS_CSV}"
num_classes = 20
[[tasks]]
name = "d"
source = "digits"
transforms = [{{type = "class_subset", classes = [0, 1]}}, {{type = "label_remap", map = [1, 0]}},
  {{type = "random_labels", count = 3, seed = 2}}, {{type = "invert"}}, {{type = "blur", sigma = 0.5}},
  {{type = "noise", sigma = 0.1}}, {{type = "subsample", n = 20}}]
[[tasks]]
name = "c"
source = "c10"
transforms = [{{type = "random_labels", fraction = 0.1}}]
""".encode()))

    for target, items in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in items:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    print(" ".join(f"{t}: {len(v)}" for t, v in seeds.items()))


if __name__ == "__main__":
    main()
