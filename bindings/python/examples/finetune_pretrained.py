#!/usr/bin/env python3
"""Fine-tune an ImageNet-pretrained backbone on the demo's data: convert the
PyTorch weights, load the backbone under a fresh 6-output head, warm the head
up with the backbone frozen, then fine-tune everything at a lower learning
rate, and write the evaluation report.

    python3 finetune_pretrained.py WEIGHTS TRAIN.csv VAL.csv TEST.csv PNG_DIR \\
        DICOM_DIR OUT [--model convnext_tiny] [--epochs 4] [--warmup-epochs 1]

WEIGHTS is a torchvision or timm state_dict (.pth, e.g. convnext_tiny-983f1562.pth
from torchvision's ConvNeXt_Tiny_Weights.IMAGENET1K_V1.url; README.md,
"Pretrained weights", says where to get them) or a converted .safetensors.
"random" makes torchvision's network with random weights instead, to try the
steps without a download (it learns little). With scripts/demo.sh's output:

    python3 finetune_pretrained.py convnext_tiny-983f1562.pth \\
        demo-output/split/train_augmented.csv demo-output/split/val.csv \\
        demo-output/split/test.csv demo-output/png demo-output/selected \\
        demo-output/finetune

The PNGs' recipe (PNG_DIR/recipe.txt, written by ich-preprocess) fixes the
input size; ImageNet's mean and standard deviation normalise it, as the
backbone saw its images in pretraining.
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import ich  # noqa: E402
from ich.pretrained import convert_pytorch_checkpoint  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the head of each torchvision network: left fresh, warmed up first
HEADS = {"resnet18": "fc.", "resnet50": "fc.", "convnext_tiny": "classifier.2.",
         "convnext_small": "classifier.2.", "efficientnet_v2_s": "classifier.1.",
         "efficientnet_v2_m": "classifier.1."}


def safetensors_weights(weights, model_name, folder):
    """The weights as libich's safetensors: converted from a .pth, or made."""
    if weights.endswith(".safetensors"):
        return weights
    pth = weights
    if weights == "random":
        import torch
        import torchvision
        torch.manual_seed(0)
        pth = os.path.join(folder, model_name + ".pth")
        torch.save(getattr(torchvision.models, model_name)().state_dict(), pth)
    out = os.path.join(folder, model_name + ".safetensors")
    convert_pytorch_checkpoint(pth, out)
    return out


def show(progress):
    """One line per epoch."""
    if progress["phase"] == "epoch":
        s = progress["stats"]
        print("epoch %d: train loss %.4f, val loss %.4f, lr %g, %.0f s"
              % (s["epoch"] + 1, s["train_loss"], s["val_loss"], s["lr"], s["seconds"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("weights", "train_csv", "val_csv", "test_csv", "png_dir", "dicom_dir", "out"):
        parser.add_argument(name)
    parser.add_argument("--model", default="convnext_tiny", choices=sorted(HEADS))
    parser.add_argument("--epochs", type=int, default=4, help="total, warm-up included")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3, help="warm-up learning rate")
    parser.add_argument("--finetune-lr-factor", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    # 1. The input: the PNGs' recipe, normalised as ImageNet's images were.
    with open(os.path.join(args.png_dir, "recipe.txt")) as f:
        recipe = ich.Window.from_string(f.read().strip())
    window = ich.Window(recipe.windows, size=recipe.size, resize=recipe.resize,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD)
    channels, rows, columns = window.output_shape(*recipe.size)

    # 2. The backbone with ImageNet's weights, a fresh head of 6 outputs.
    model = ich.Model.preset(args.model, channels=channels, size=(rows, columns), outputs=6)
    with tempfile.TemporaryDirectory() as folder:
        report = model.load_pretrained(safetensors_weights(args.weights, args.model, folder))
    print("%s: %d tensors loaded, %d skipped (%s), %d new (%s)"
          % (args.weights, len(report.loaded), len(report.skipped),
             ", ".join(report.skipped), len(report.fresh), ", ".join(report.fresh)))

    train = ich.Dataset(args.train_csv, args.png_dir, window=window, batch_size=args.batch_size,
                        augment="hflip:0.5,rotate:0.5:15", model=model)
    val = ich.Dataset(args.val_csv, args.png_dir, window=window, batch_size=args.batch_size,
                      shuffle=False, model=model)
    with train, val:
        optimizer = ich.Optimizer(model, "adamw", lr=args.lr)
        # 3. Warm-up: the backbone frozen, only the new head learns.
        ich.train(model, optimizer, train, val, epochs=args.warmup_epochs, balanced=True,
                  warmup_epochs=args.warmup_epochs, warmup_trainable=HEADS[args.model],
                  checkpoint_dir=os.path.join(args.out, "warmup"), progress=show)
        # 4. Fine-tuning: everything learns, at a lower rate, with the
        #    pipeline's plateau schedule and early stopping.
        optimizer.lr = args.lr * args.finetune_lr_factor
        ich.train(model, optimizer, train, val, epochs=args.epochs - args.warmup_epochs,
                  balanced=True, patience=3, checkpoint_dir=args.out, progress=show)

    # 5. The report on the held-out patients (the DICOM files, through the
    #    recipe stored in the checkpoint).
    ich.evaluate_report(os.path.join(args.out, "best.safetensors"), args.test_csv,
                        args.dicom_dir, os.path.join(args.out, "report"))
    print("report: %s" % os.path.join(args.out, "report", "report.html"))


if __name__ == "__main__":
    main()
