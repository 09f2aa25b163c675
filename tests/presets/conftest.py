"""The torchvision-structured presets against torchvision 0.14 (issue 14):
full-depth networks at 64 x 64, so these take minutes, not seconds. The
test command runs them on the normal build and again on oneDNN's AVX2
kernels, not under the sanitizers (the layer sweep covers every layer
there)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))  # import ich
