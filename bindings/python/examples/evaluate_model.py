#!/usr/bin/env python3
"""The tutorial's steps 10 and 11 in Python: evaluate a trained model on
held-out images, then predict one slice.

    python3 evaluate_model.py CHECKPOINT TEST.csv IMAGE_DIR [SLICE.dcm]

Step 10 runs the model over the test images (the windows, size and
normalisation stored in the checkpoint), accumulates ich.Metrics batch by
batch and prints per label the accuracy, precision, recall, F1 and ROC-AUC,
plus the overall accuracy and the RSNA weighted log loss. Step 11 prints the
six probabilities of one DICOM slice. With scripts/demo.sh's output:

    python3 evaluate_model.py demo-output/model/best.safetensors \\
        demo-output/split/test.csv demo-output/selected
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import ich  # noqa: E402


def show(value):
    return "  n/a" if value is None else "%.3f" % value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("test_csv")
    parser.add_argument("image_dir")
    parser.add_argument("slice", nargs="?", help="one DICOM file to predict (step 11)")
    args = parser.parse_args()

    model = ich.Model.load(args.checkpoint)
    window = model.input_window()            # the recipe the model was trained with
    # Step 10: evaluation on the test patients
    # the CSV's label columns matched to the model's outputs by name, so a
    # CSV in another column order (the tutorial's) scores the same
    metrics = ich.Metrics(names=model.labels)
    with ich.Dataset(args.test_csv, args.image_dir, window=window, shuffle=False,
                     batch_size=32, model=model) as test:
        for x, y, _ in test.batches():
            metrics.update(model.predict(x), y)
    r = metrics.compute()
    print("%-18s %8s %9s %7s %6s %6s" % ("label", "accuracy", "precision", "recall", "F1",
                                         "AUC"))
    for i, name in enumerate(r["classes"]):
        print("%-18s %8s %9s %7s %6s %6s" % (name, show(r["accuracy"][i]),
                                             show(r["precision"][i]), show(r["recall"][i]),
                                             show(r["f1"][i]), show(r["auc"][i])))
    print("overall accuracy %s, RSNA weighted log loss %s"
          % (show(r["accuracy_overall"]), show(r["rsna_log_loss"])))
    # Step 11: one slice
    if args.slice:
        ids, probabilities = ich.predict_files(model, [args.slice])
        print(ids[0] + ": " + ", ".join("%s %.3f" % (name, p)
                                        for name, p in zip(r["classes"], probabilities[0])))


if __name__ == "__main__":
    main()
