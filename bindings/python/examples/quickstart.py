#!/usr/bin/env python3
"""The README's Python example: the pipeline in a few calls, on the built-in
synthetic data (it writes data/, scan.png and ichnet.safetensors in the
current folder; about a minute on two cores).

    python3 quickstart.py

The test command checks that the README shows this code, runs it against an
installed libich (pip-installed package, no environment variables) and
type-checks it with mypy --strict against the package's stubs.
"""

import ich

ich.write_phantom("data", patients=20)                  # data/images/*.dcm, data/labels.csv
labels = ich.Labels.read("data/labels.csv")             # one row per image, 6 columns
slice_ = ich.read_dicom("data/images/%s.dcm" % labels.ids[0])  # .pixels, .hu and the metadata
rgb = ich.Window("blood,brain,bone", size=256).apply(slice_.hu)
ich.write_png("scan.png", rgb)

ich.groups_from_dicom(labels, "data/images")            # patient of each image
train, val, test = ich.split_labels(labels, seed=0)
with ich.Dataset(train, "data/images", augment="hflip:0.5,rotate:0.5:15") as ds:
    model = ich.Model.preset("ichnet")                  # or ich.Model("input 3x256x256, conv 16 3, ...")
    opt = ich.Optimizer(model, "adam", lr=1e-3)
    model.train()
    for x, y, rows in ds.batches(epoch=0):              # (16, 3, 256, 256), (16, 6)
        loss, grad = ich.bce_with_logits(model.forward(x), y)
        model.zero_grad(); model.backward(grad); opt.step()
    model.save("ichnet.safetensors")                    # PyTorch state_dict names and layouts
