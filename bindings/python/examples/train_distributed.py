#!/usr/bin/env python3
"""Data-parallel training under MPI, from Python: every rank runs this
script, trains on its share of each batch, and ends with the same weights.

    mpirun -np 2 python3 train_distributed.py OUT [--epochs 3]
    python3 train_distributed.py OUT          # one process: the same weights

Rank 0 writes a small phantom into OUT/data (the others wait at a barrier,
then read it: one machine, or a folder every machine sees), every rank
trains, rank 0 alone writes OUT/run (checkpoints, history.csv) and prints.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import ich  # noqa: E402

SPEC = ("input 3x32x32, conv 8 3 pad 1, relu, maxpool 2, conv 16 3 pad 1, relu, "
        "maxpool 16, flatten, linear 6")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the data and the run")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    rank, size = ich.dist.rank(), ich.dist.size()
    data = os.path.join(args.out, "data")
    if rank == 0:
        print("%d rank(s): %s" % (size, ich.dist.describe()))
        ich.write_phantom(data, patients=3, slices=8, size=32, seed=2, prevalence=1.0)
    ich.dist.barrier()  # the data is there for every rank
    ich.set_threads(1)
    labels = ich.Labels.read(os.path.join(data, "labels.csv"))
    window = ich.Window("blood,brain,bone", size=32)
    with ich.Dataset(labels, os.path.join(data, "images"), window=window, batch_size=8,
                     seed=1, workers=1) as dataset:
        model = ich.Model(SPEC)
        optimizer = ich.Optimizer(model, "adam", lr=3e-3)
        # batch_size 8 is the global batch: 4 images per rank with 2 ranks
        history = ich.train(model, optimizer, dataset, epochs=args.epochs, schedule=False,
                            checkpoint_dir=os.path.join(args.out, "run"))
    if rank == 0:
        for row in history:
            print("epoch %d  loss %.5f  accuracy %.4f" % (row["epoch"] + 1, row["train_loss"],
                                                          row["train_accuracy"]))


if __name__ == "__main__":
    main()
