#!/usr/bin/env python3
"""Read a DICOM slice, stack the blood, brain and bone windows as RGB and
write a PNG.

    python3 window_slice.py slice.dcm slice.png [--size 256] [--windows blood,brain,bone]

Without arguments it uses CT_small.dcm from pydicom's test files, if present.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import ich  # noqa: E402


def default_input():
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return None
    return get_testdata_file("CT_small.dcm")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dicom", nargs="?", default=default_input(), help="input DICOM file")
    parser.add_argument("png", nargs="?", default="slice.png", help="output PNG")
    parser.add_argument("--windows", default="blood,brain,bone",
                        help="comma-separated presets or center/width pairs (1 or 3)")
    parser.add_argument("--size", type=int, default=0, help="output size N x N (0: keep)")
    args = parser.parse_args()
    if args.dicom is None:
        parser.error("give a DICOM file (pydicom's test files are not installed)")

    try:
        img = ich.read_dicom(args.dicom)
    except ich.IchError as err:
        sys.exit("cannot read %s: %s" % (args.dicom, err))
    print("%s: %s %dx%d, %s, HU %.0f..%.0f" % (
        os.path.basename(args.dicom), img.modality or "?", img.rows, img.columns,
        img.pixels.dtype, float(img.hu.min()), float(img.hu.max())))

    with ich.Window(args.windows, size=args.size or None) as window:
        for center, width in window.windows:
            print("  window %g/%g" % (center, width))
        rgb = window.apply(img.hu)                      # rows x columns x channels, uint8
        tensor = window.apply(img.hu, dtype=np.float32)  # channels x rows x columns
    print("  image %s, tensor %s (mean %.3f)" % (rgb.shape, tensor.shape, tensor.mean()))

    ich.write_png(args.png, rgb)
    print("wrote", args.png)


if __name__ == "__main__":
    main()
