"""The layer sweep of layer_sweep.py under pytest: every layer kind against
PyTorch (float64), values and gradients, one test per group of cases so a
failure names its layer kind. Run it again with ONEDNN_MAX_CPU_ISA=AVX2 or
SSE41 to check the kernels other CPUs get (scripts/test.sh does)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("torch")

import layer_sweep  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)

CASES = list(enumerate(layer_sweep.cases()))
GROUPS = sorted({case[0].split("_k")[0].split("_c")[0] for _, case in CASES})


def group_of(case):
    return case[0].split("_k")[0].split("_c")[0]


def test_groups_cover_every_layer_kind():
    kinds = {"conv", "conv_relu", "residual", "shortcut", "maxpool", "avgpool", "batchnorm",
             "batchnorm_relu", "relu_after_pool", "gap", "linear", "concat",
             "residual_identity", "residual_pool_shortcut"}
    assert kinds <= set(GROUPS), sorted(kinds - set(GROUPS))
    sizes = {(case[3], case[4]) for _, case in CASES}
    assert sizes == {(n, t) for n in (1, 3, 16) for t in (1, 2)}


@pytest.mark.parametrize("group", GROUPS)
def test_layers_match_pytorch(group):
    selected = [(i, c) for i, c in CASES if group_of(c) == group]
    assert selected
    failures = layer_sweep.check_cases(selected)
    assert not failures, "%d of %d cases failed:\n%s" % (
        len({f.split(":")[0] for f in failures}), len(selected), "\n".join(failures[:20]))
