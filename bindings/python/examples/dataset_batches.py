#!/usr/bin/env python3
"""Read training batches the way a training loop does: a label CSV and a
folder of images (DICOM or the PNGs of ich-preprocess) become shuffled
float32 batches, N x C x H x W images and N x 6 labels, loaded ahead by
worker threads while the loop works, with online augmentation.

    python3 dataset_batches.py LABELS.csv IMAGE_DIR [--batch-size 16] [--epochs 1]

It prints the batch shapes, the share of each label seen in the epoch and
the loading speed.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import ich  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", help="wide (or RSNA long) label CSV")
    parser.add_argument("image_dir", help="folder of <id>.dcm or <id>.png images")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    augment = ich.Augment("hflip:0.5,rotate:0.5:10,brightness_contrast:0.3:0.1:0.1")
    with ich.Dataset(args.labels, args.image_dir, size=256, augment=augment,
                     batch_size=args.batch_size, seed=0, workers=args.workers) as data:
        print("%d samples of %s, %d batches per epoch, labels %s"
              % (len(data), "x".join(map(str, data.sample_shape)), data.num_batches,
                 ", ".join(data.labels.columns)))
        for epoch in range(args.epochs):
            start = time.perf_counter()
            seen, positives = 0, 0
            for x, y, rows in data.batches(epoch):
                if seen == 0:
                    print("epoch %d: first batch x %s %s, y %s, value range %.2f..%.2f"
                          % (epoch, x.shape, x.dtype, y.shape, x.min(), x.max()))
                seen += len(y)
                positives = positives + y.sum(axis=0)
            seconds = time.perf_counter() - start
            share = ", ".join("%s %.0f%%" % (name, 100 * p / max(seen, 1))
                              for name, p in zip(data.labels.columns, np.atleast_1d(positives)))
            print("epoch %d: %d samples in %.2f s (%.0f images/s); positives: %s"
                  % (epoch, seen, seconds, seen / seconds, share))


if __name__ == "__main__":
    main()
