#!/usr/bin/python3
"""The preprocessing step written the usual Python way, as a yardstick for
ich-preprocess (see bench/README.md).

For every *.dcm file under INPUT_DIR: read it with pydicom, convert the
stored values to Hounsfield units with RescaleSlope/RescaleIntercept in
float32, map three windows (blood 75/215, brain 40/80, bone 600/2800, as
center/width) to [0, 1] with clip((hu - lo) / width, 0, 1), stack them as an
RGB uint8 image (v * 255, truncated), resize it to 256x256 with Pillow's
BILINEAR filter and save OUTPUT_DIR/<stem>.png.

    preprocess_reference.py INPUT_DIR OUTPUT_DIR [--workers N] [--size N] [--quiet]

Needs Debian's python3-pydicom, python3-numpy and python3-pil.
"""
import argparse
import multiprocessing
import os
import sys
import time

import numpy as np
import pydicom
from PIL import Image

# center, width in HU: blood, brain, bone -> R, G, B
WINDOWS = ((75.0, 215.0), (40.0, 80.0), (600.0, 2800.0))


def preprocess(job):
    """Convert one DICOM file to one PNG; returns the PNG path."""
    dicom_path, png_path, size = job
    ds = pydicom.dcmread(dicom_path)
    slope = np.float32(getattr(ds, "RescaleSlope", 1.0))
    intercept = np.float32(getattr(ds, "RescaleIntercept", 0.0))
    hu = ds.pixel_array.astype(np.float32) * slope + intercept

    channels = []
    for center, width in WINDOWS:
        lo = np.float32(center - width / 2)
        channels.append(np.clip((hu - lo) / np.float32(width), 0.0, 1.0))
    rgb = (np.stack(channels, axis=-1) * 255).astype(np.uint8)

    image = Image.fromarray(rgb, mode="RGB").resize((size, size), Image.BILINEAR)
    image.save(png_path)
    return png_path


def find_dicoms(root):
    """All *.dcm files under root, sorted, as absolute paths."""
    found = []
    for folder, _, files in os.walk(root):
        found.extend(os.path.join(folder, f) for f in files if f.lower().endswith(".dcm"))
    return sorted(found)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1: no pool, all in this process)")
    parser.add_argument("--size", type=int, default=256, help="output rows and columns")
    parser.add_argument("--quiet", action="store_true", help="no summary line")
    args = parser.parse_args()
    if args.workers < 1 or args.size < 1:
        parser.error("--workers and --size must be at least 1")

    dicoms = find_dicoms(args.input_dir)
    if not dicoms:
        sys.exit(f"preprocess_reference.py: no .dcm files under {args.input_dir}")
    os.makedirs(args.output_dir, exist_ok=True)
    jobs = [(path, os.path.join(args.output_dir,
                                os.path.splitext(os.path.basename(path))[0] + ".png"),
             args.size)
            for path in dicoms]

    start = time.perf_counter()
    if args.workers == 1:
        for job in jobs:
            preprocess(job)
    else:
        with multiprocessing.Pool(args.workers) as pool:
            for _ in pool.imap_unordered(preprocess, jobs, chunksize=4):
                pass
    seconds = time.perf_counter() - start
    if not args.quiet:
        print(f"{len(jobs)} images in {seconds:.2f} s ({len(jobs) / seconds:.1f} images/s, "
              f"{args.workers} worker(s))")


if __name__ == "__main__":
    main()
