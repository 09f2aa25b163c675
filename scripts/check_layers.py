#!/usr/bin/env python3
"""Check libich's layering: every `#include "..."` in libich/ must point to
the same module or to a lower layer, and no two modules may include each
other (issue 13, item 5).

A module is a folder under libich/ (backend/cpu and backend/cuda belong to
backend). A public header `ich/X.h` belongs to the module that implements
it (PUBLIC below), so calling a higher layer through its public API counts
as including it. Layers, low to high (the README's layout section says the
same):

  0  core                      status, errors, files, threads, CSV, JSON, UTF-8
  1  dicom, io, dist           DICOM reading; the PNG codec; the communicator
                               of distributed runs (MPI, loaded at run time)
  2  window                    HU windows and resize (takes dicom's slices)
  3  augment, phantom          image transforms; the synthetic DICOM data
  4  data                      labels, sampling, split, selection, dataset,
                               offline augmentation
  5  backend, nn               compute backends; the network and its files
  6  optim, metrics            loss, optimizers, checkpoints; metrics
  7  train                     the training driver
  8  report, pipeline          the evaluation report and its plots; whole-
                               folder jobs (preprocess, predict a folder)

Usage: scripts/check_layers.py [ROOT]   (exit 1 and one line per problem)
"""
import os
import re
import sys

LAYERS = {
    "core": 0,
    "dicom": 1, "io": 1, "dist": 1,
    "window": 2,
    "augment": 3, "phantom": 3,
    "data": 4,
    "backend": 5, "nn": 5,
    "optim": 6, "metrics": 6,
    "train": 7,
    "report": 8, "pipeline": 8,
}

# Public headers: the module whose code implements them.
PUBLIC = {
    "ich/core.h": "core", "ich/files.h": "core",
    "ich/dicom.h": "dicom", "ich/image.h": "io", "ich/dist.h": "dist",
    "ich/window.h": "window",
    "ich/augment.h": "augment", "ich/phantom.h": "phantom",
    "ich/labels.h": "data", "ich/dataset.h": "data",
    "ich/model.h": "nn", "ich/backend.h": "backend",
    "ich/optim.h": "optim", "ich/metrics.h": "metrics",
    "ich/train.h": "train", "ich/report.h": "report",
    "ich/pipeline.h": "pipeline",
}

# Includes allowed although they break the rule, each with its reason
# (none today: keep it that way).
ALLOWED = set()

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def module_of_file(relpath):
    """libich/<module>/... -> module"""
    return relpath.split("/", 1)[0]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    libich = os.path.join(root, "libich")
    problems = []
    edges = {}  # (from, to) -> first "file: include" seen
    for folder, _, files in sorted(os.walk(libich)):
        for name in sorted(files):
            if not name.endswith((".c", ".h", ".cpp", ".cu")):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, libich).replace(os.sep, "/")
            source = module_of_file(rel)
            if source not in LAYERS:
                problems.append(f"libich/{rel}: module {source}/ has no layer in scripts/check_layers.py")
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for included in INCLUDE.findall(text):
                if included == "ich/ich.h":
                    problems.append(f"libich/{rel}: includes the umbrella ich/ich.h (include what it uses)")
                    continue
                if included in PUBLIC:
                    target = PUBLIC[included]
                elif os.path.exists(os.path.join(libich, included)):
                    target = module_of_file(included)
                elif included.startswith("ich/"):
                    problems.append(f"libich/{rel}: public header {included} has no module in scripts/check_layers.py")
                    continue
                else:
                    continue  # beside the file (a test helper, a generated file): not a module
                if target == source or (source, included) in ALLOWED:
                    continue
                if target not in LAYERS:
                    problems.append(f"libich/{rel}: includes {included} of {target}/, which has no layer")
                    continue
                edges.setdefault((source, target), f"libich/{rel} includes {included}")
                if LAYERS[target] > LAYERS[source]:
                    problems.append(f"libich/{rel}: {source}/ (layer {LAYERS[source]}) includes "
                                    f"{included} of {target}/ (layer {LAYERS[target]}, higher)")
    for (a, b), where in sorted(edges.items()):
        if a < b and (b, a) in edges:
            problems.append(f"{a}/ and {b}/ include each other: {where}; {edges[(b, a)]}")
    for line in problems:
        print(line)
    if problems:
        print(f"check_layers: {len(problems)} problem(s)")
        return 1
    print(f"check_layers: {len(edges)} module dependencies, all downward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
