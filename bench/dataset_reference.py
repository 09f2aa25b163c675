#!/usr/bin/env python3
"""The dataset step written the usual Python way, for bench/run_dataset.sh.

For every DICOM file in IMAGE_DIR, in a seeded shuffled order per epoch:
read it with pydicom, make Hounsfield units (RescaleSlope, RescaleIntercept)
as float32, map the blood (75/215), brain (40/80) and bone (600/2800)
windows to [0, 1] as three channels, resize to 256 x 256 (bilinear, half-pixel
centres, no antialiasing: what libich and PyTorch's interpolate do), and
stack 16 samples into a float32 N x 3 x 256 x 256 batch. One process, one
core (numpy's element-wise work is single-threaded). A first, untimed
epoch warms up; then --epochs epochs are timed.

    dataset_reference.py IMAGE_DIR [--epochs 2] [--size 256] [--batch 16]

Prints "python: N images in T s = R images/s (C s CPU)".
"""

import argparse
import glob
import os
import resource
import time

import numpy as np
import pydicom

WINDOWS = [(75.0, 215.0), (40.0, 80.0), (600.0, 2800.0)]


def axis_taps(n_in, n_out):
    """Source indices and weights of half-pixel bilinear resampling."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, np.float32(1) - l1, l1


def resize(planes, size, taps_cache):
    """Bilinear resize of C x H x W float32 planes to C x size x size."""
    _, h, w = planes.shape
    key = (h, w, size)
    if key not in taps_cache:
        taps_cache[key] = (axis_taps(h, size), axis_taps(w, size))
    (y0, y1, wy0, wy1), (x0, x1, wx0, wx1) = taps_cache[key]
    rows = planes[:, y0, :] * wy0[None, :, None] + planes[:, y1, :] * wy1[None, :, None]
    return rows[:, :, x0] * wx0 + rows[:, :, x1] * wx1


def load(path, size, taps_cache):
    ds = pydicom.dcmread(path)
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    hu = ds.pixel_array.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    planes = np.empty((len(WINDOWS),) + hu.shape, dtype=np.float32)
    for c, (center, width) in enumerate(WINDOWS):
        lo = np.float32(center - width / 2)
        np.clip((hu - lo) / np.float32(width), 0, 1, out=planes[c])
    return resize(planes, size, taps_cache)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image_dir")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    files = sorted(glob.glob(os.path.join(args.image_dir, "*.dcm")))
    if not files:
        raise SystemExit("dataset_reference.py: no .dcm files in %s" % args.image_dir)
    taps_cache = {}
    total = 0
    checksum = 0.0
    # Epoch 0 warms up (imports done, caches filled): not timed, as in
    # bench_dataset.c.
    for epoch in range(args.epochs + 1):
        if epoch == 1:
            total = 0
            start = time.perf_counter()
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        order = np.random.default_rng(epoch).permutation(len(files))
        for first in range(0, len(order), args.batch):
            batch = np.stack([load(files[i], args.size, taps_cache)
                              for i in order[first:first + args.batch]]).astype(np.float32)
            total += batch.shape[0]
            checksum += float(batch[0, 0, 0, 0])
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print("python: %d images (3x%dx%d) in %.3f s = %.1f images/s (%.2f s CPU)"
          % (total, args.size, args.size, elapsed, total / elapsed, cpu))


if __name__ == "__main__":
    main()
