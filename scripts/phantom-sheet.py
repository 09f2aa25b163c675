#!/usr/bin/env python3
"""An image sheet of the built-in phantom: 16 random slices (seeded; half of
them drawn among the slices with a bleed, so that every type shows), each in
the brain (40/80), blood (75/215) and bone (600/2800) windows side by side,
with its labels. Made through the library (ich.phantom_slice, ich.Window,
ich.write_png), so it shows exactly what ich-phantom writes.

  ICH_BUILD_DIR=$PWD/build PYTHONPATH=bindings/python \\
      /usr/bin/python3 scripts/phantom-sheet.py docs/phantom-sheet.png

The labels are written on the tiles when Pillow is installed, and always
to the .txt file beside the PNG."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bindings", "python"))
import ich  # noqa: E402

SHORT = ("EDH", "IPH", "IVH", "SAH", "SDH")  # epidural ... subdural


def pick_slices(options, count, seed):
    """`count` slices: half among the positive ones, half among all."""
    rng = np.random.default_rng(seed)
    everything, positive = [], []
    for p in range(options["patients"]):
        for k in range(options["slices"]):
            everything.append((p, k))
    for p, k in everything:
        tissue = ich.phantom_tissues(p, 0, k, **dict(options, size=64))
        if tissue.max() >= 12:
            positive.append((p, k))
    chosen = [positive[i] for i in rng.choice(len(positive), count // 2, replace=False)]
    rest = [s for s in everything if s not in chosen]
    chosen += [rest[i] for i in rng.choice(len(rest), count - len(chosen), replace=False)]
    rng.shuffle(chosen)
    return chosen


def label_text(patient, k, labels):
    types = [SHORT[t] for t in range(5) if labels[t + 1]]
    return "patient %d slice %d: %s" % (patient, k + 1, " ".join(types) if types else "no bleed")


def annotate(sheet, texts, tile, per_row):
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return sheet
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for n, text in enumerate(texts):
        r, c = divmod(n, per_row)
        x, y = c * 3 * tile + 6, r * (tile + 18) + tile + 3
        draw.text((x, y), text, fill=(255, 255, 0))
    return np.asarray(image)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="PNG to write (a .txt with the labels goes beside it)")
    parser.add_argument("--seed", type=int, default=7, help="phantom seed (default 7, the demo's)")
    parser.add_argument("--pick-seed", type=int, default=1, help="which slices (default 1)")
    parser.add_argument("--tile", type=int, default=256, help="tile size in pixels")
    args = parser.parse_args()
    options = dict(patients=40, slices=24, size=512, seed=args.seed)
    window = ich.Window("brain,blood,bone", size=args.tile)
    per_row, tile = 4, args.tile
    slices = pick_slices(options, 16, args.pick_seed)
    rows = (len(slices) + per_row - 1) // per_row
    sheet = np.zeros((rows * (tile + 18), per_row * 3 * tile, 3), dtype=np.uint8)
    texts = []
    for n, (p, k) in enumerate(slices):
        hu, labels, _ = ich.phantom_slice(p, 0, k, **options)
        rgb = window.apply(hu)  # (tile, tile, 3): brain, blood, bone
        r, c = divmod(n, per_row)
        for w in range(3):
            x0 = (c * 3 + w) * tile
            sheet[r * (tile + 18):r * (tile + 18) + tile, x0:x0 + tile, :] = rgb[..., w][..., None]
        texts.append(label_text(p, k, labels))
    sheet = annotate(sheet, texts, tile, per_row)
    ich.write_png(args.out, np.ascontiguousarray(sheet))
    with open(os.path.splitext(args.out)[0] + ".txt", "w") as f:
        f.write("Each group of three: brain (40/80), blood (75/215), bone (600/2800) window.\n")
        f.write("Rows left to right, top to bottom:\n")
        for text in texts:
            f.write(text + "\n")
    print("wrote %s (%d slices)" % (args.out, len(slices)))


if __name__ == "__main__":
    main()
