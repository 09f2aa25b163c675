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
             "residual_identity", "residual_pool_shortcut",
             "silu", "gelu", "sigmoid", "se", "se_relu", "se_residual",
             "layernorm2d", "layernorm2d_eps", "layernorm_gap", "layernorm_linear",
             "layerscale", "convnext_block",
             # grouped and depthwise convolution (layer_sweep.gconv_cases)
             "gconv", "gconv_relu", "dwconv", "dwconv_relu", "mbconv", "mbconv_stride",
             "convnext", "resnext",
             # linear N pointwise (layer_sweep.pointwise_cases)
             "pwlinear", "pwlinear_nobias", "pwlinear_relu", "cnblock"}
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


# Which kernels the ISA limit must give (and which it must not).
ISA_KERNELS = {"AVX2": ("avx2", "avx512"), "SSE41": ("sse41", "avx")}


def test_isa_limit_changes_the_kernels():
    """With ONEDNN_MAX_CPU_ISA set (scripts/test.sh runs the numerical
    tests again with AVX2 and SSE41), oneDNN's verbose output shows that
    the convolutions really run the limited kernels: the run is not the
    same as the unlimited one. Unset: the kernels are whatever this CPU
    gives, and the test only checks that they are named."""
    import subprocess
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    code = ("import sys; sys.path.insert(0, %r); import layer_sweep as L, numpy as np; "
            "L.run_libich(0, ('t', [L.Conv(6, 3, 1, 1), L.Pool('maxpool', 2), L.BatchNorm(), L.Conv(8, 1, 2)], (4, 8, 8), 2, 1))"
            % os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    impls = {line.split(",")[4] for line in out.splitlines()
             if line.startswith("onednn_verbose,exec,cpu,")}
    assert impls, "no primitive in oneDNN's verbose output:\n" + out[-2000:]
    if isa not in ISA_KERNELS:
        return
    want, banned = ISA_KERNELS[isa]
    assert any(want in i for i in impls), "ONEDNN_MAX_CPU_ISA=%s gave %s" % (isa, sorted(impls))
    assert not any(banned in i for i in impls), "ONEDNN_MAX_CPU_ISA=%s gave %s" % (
        isa, sorted(impls))


def conv_formats(layout):
    """The activation formats (src/dst and their gradients) of every
    convolution pass in a small training step, from oneDNN's verbose
    output, with ICH_CPU_LAYOUT=layout: {prop_kind: set of formats}."""
    import subprocess
    code = ("import sys; sys.path.insert(0, %r); import layer_sweep as L; "
            "L.run_libich(0, ('t', [L.Conv(16, 3, 1, 1), L.Conv(24, 3, 1, 1)], (16, 8, 8), 2, 1))"
            % os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, ONEDNN_VERBOSE="1", ICH_CPU_LAYOUT=layout)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    formats = {}
    for line in out.splitlines():
        f = line.split(",")
        if line.startswith("onednn_verbose,exec,cpu,convolution,"):
            # "src_f32::blocked:aBcd8b:f0": the format is the fourth field
            acts = [m.split(":")[3] for m in f[6].split() if m.split("_")[0] in ("src", "dst")]
            formats.setdefault(f[5], set()).update(acts)
    return formats


def test_layout_setting_chooses_the_layouts():
    """ICH_CPU_LAYOUT=nhwc keeps every convolution pass on NHWC (acdb);
    =blocked lets each pass (forward, backward data, backward weights) run
    on the layout its kernel prefers, reordered from and to NHWC: oneDNN's
    blocked nChw8c / nChw16c (aBcd8b, aBcd16b), or plain NCHW (abcd) for
    the gemm backward below AVX2 (ONEDNN_MAX_CPU_ISA=SSE41). So the sweep
    run with ICH_CPU_LAYOUT=blocked (scripts/test.sh) tests those kernels
    and the reorders around them."""
    nhwc = conv_formats("nhwc")
    assert set(nhwc) == {"forward_training", "backward_data", "backward_weights"}, nhwc
    assert all(fmts == {"acdb"} for fmts in nhwc.values()), nhwc
    blocked = conv_formats("blocked")
    assert set(blocked) == set(nhwc), blocked
    for prop, fmts in blocked.items():
        assert "acdb" not in fmts, (prop, blocked)
    assert any(f.startswith("aBcd") for f in blocked["forward_training"]), blocked


def test_bad_layout_setting_is_an_error():
    import subprocess
    code = ("import sys; sys.path.insert(0, %r); import layer_sweep as L; "
            "L.ich.Model('input 3x8x8, conv 4 3, flatten, linear 2')" % os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, ICH_CPU_LAYOUT="diagonal"))
    assert run.returncode != 0
    assert "ICH_CPU_LAYOUT=diagonal is not one of nhwc, blocked, auto" in run.stderr, run.stderr
