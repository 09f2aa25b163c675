"""Prediction: DICOM files -> label probabilities with a trained model.

``ich.predict_files(model, paths_or_folder)`` reads each DICOM file, applies
the model's input recipe (:meth:`ich.Model.input_window`, from the
checkpoint's metadata) and predicts in batches, as the ``ich-predict``
program does.
"""

import os
import warnings
from pathlib import Path

import numpy as np

from .dicom import read_dicom
from .files import find_files

__all__ = ["predict_files"]

_SUFFIXES = (".dcm", ".dicom")


def _looks_like_dicom(path):
    if path.suffix.lower() in _SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _files(paths_or_folder):
    if isinstance(paths_or_folder, (str, bytes, os.PathLike)):
        root = Path(os.fsdecode(paths_or_folder))
        if root.is_dir():
            # libich's walk, as ich-predict's: each real file once, no
            # symbolic link loops, FIFOs and devices never opened
            paths, skipped = find_files(root)
            for path, reason in skipped:
                warnings.warn("%s: %s: skipped" % (path, reason), RuntimeWarning, stacklevel=3)
            return sorted(p for p in map(Path, paths) if _looks_like_dicom(p))
        return [root]
    return [Path(os.fsdecode(p)) for p in paths_or_folder]


def _image_id(path):
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def predict_files(model, paths_or_folder, batch_size=16, threshold=0.5, window=None):
    """Probabilities for DICOM files.

    Arguments:
        model: an :class:`ich.Model` (e.g. ``ich.Model.load(checkpoint)``)
            whose metadata holds its input recipe.
        paths_or_folder: a folder (searched recursively for *.dcm, *.dicom
            and files with the DICM marker, sorted by path; each real file
            once, see :func:`ich.find_files`; FIFOs, devices and broken
            links are skipped with a ``RuntimeWarning``), one file, or a
            sequence of files.
        batch_size: images per forward pass.
        threshold: for a cascade model, P(any) <= threshold zeroes the subtypes.
        window: the input recipe (an :class:`ich.Window` or its text) for a
            model that carries none; by default the model's own
            (:meth:`ich.Model.input_window`, which raises ``NotFoundError``
            when the model has no recipe).

    Returns ``(ids, probabilities)``: the image IDs (file names without
    .dcm) and a float32 array (N, outputs). A file that cannot be read
    raises the library's :class:`ich.IchError`.
    """
    if int(batch_size) < 1:
        raise ValueError("batch_size must be at least 1")
    files = _files(paths_or_folder)
    ids = [_image_id(p) for p in files]
    out = np.empty((len(files), model.outputs), np.float32)
    from .window import Window
    owned = None  # a recipe made here is freed here; the caller's is left open
    if window is None:
        window = owned = model.input_window()
    elif isinstance(window, str):
        window = owned = Window.from_string(window)
    try:
        for start in range(0, len(files), int(batch_size)):
            chunk = files[start:start + int(batch_size)]
            images = np.stack([window.apply(read_dicom(p), dtype="float32") for p in chunk])
            out[start:start + len(chunk)] = model.predict(images, threshold=threshold)
    finally:
        if owned is not None:
            owned.close()
    return ids, out
