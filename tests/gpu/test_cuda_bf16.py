"""The CUDA backend's mixed precision (ICH_CUDA_MATH=bf16) against the CPU
backend: convolutions on bfloat16 copies of their operands with FP32
sums, everything else (the rest of the layers, master weights, optimizer)
in FP32.

Runs only where the CUDA backend starts with BF16 math, so in a pytest
run of its own:

    ICH_CUDA_MATH=bf16 ICH_LIBRARY=build/libich/libich.so.0 python3 -m pytest -q tests/gpu

(tests/gpu/test_cuda.py, which needs FP32, skips in that run.)

Tolerances: a bfloat16 value carries 8 significant bits (relative
rounding up to 2^-9); a convolution's output is its FP32 sum rounded to
bfloat16 once more. One convolution is checked element by element against
numpy doing exactly that; whole networks, by the norm of the difference
(``||cuda - cpu|| / ||cpu||``).
"""

import numpy as np
import pytest

import ich
from test_cuda import LAYERS, SGD, images, layer_spec, logit_grads, pair  # noqa: E402

try:
    CUDA_INFO = ich.backend_info("cuda")
except ich.IchError as e:
    CUDA_INFO = "not available: %s" % e

pytestmark = pytest.mark.skipif(
    "BF16 math" not in CUDA_INFO,
    reason="needs the CUDA backend with ICH_CUDA_MATH=bf16 (%s)" % CUDA_INFO)

NORM_TOLERANCE = 3e-2


@pytest.fixture(autouse=True)
def restore_backend():
    yield
    ich.use_backend(None)


def to_bf16(a):
    """float32 -> nearest bfloat16 (ties to even), as float32."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32)


def bf16_ulp(a):
    """The spacing of bfloat16 values at |a| (8 significant bits)."""
    exponent = np.floor(np.log2(np.maximum(np.abs(a), 1e-30)))
    return np.exp2(exponent - 7)


def conv2d(x, w):
    """Cross-correlation, stride 1, no padding, float64: NCHW, OIHW."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1))
    for dy in range(kh):
        for dx in range(kw):
            patch = x[:, :, dy:dy + h - kh + 1, dx:dx + wd - kw + 1].astype(np.float64)
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, dy, dx].astype(np.float64))
    return out


def relative(got, want):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)


def test_convolution_rounds_its_operands_to_bfloat16():
    """conv out = bf16(sum bf16(x) bf16(w)) + bias (FP32), element by
    element within one bfloat16 step; and far from the FP32 result, so
    bfloat16 really ran."""
    spec = "input 3x10x10, conv 6 3, flatten"
    _, gpu = pair(spec, seed=21)
    state = gpu.state_dict()
    x = images(2, gpu.input_shape, seed=22)
    got = gpu.eval().forward(x).reshape(2, 6, 8, 8)
    bias = state["conv1.bias"].reshape(1, 6, 1, 1)
    exact = conv2d(to_bf16(x), to_bf16(state["conv1.weight"]))
    want = to_bf16(exact.astype(np.float32)) + bias
    gap = np.abs(got - want) / bf16_ulp(exact)
    assert gap.max() <= 1.0 + 1e-3, "%d values more than one bfloat16 step off" % (gap > 1).sum()
    fp32 = conv2d(x, state["conv1.weight"]) + bias
    assert relative(got, fp32) > 1e-4, "the convolution ran in FP32"
    assert relative(got, fp32) < 1e-2


# The convolution cases whose outputs reach the loss smoothly. Behind a
# max pool, ReLU or batch norm, bfloat16 rounding moves near-ties of the
# forward pass (which value is the maximum, which side of 0) and with
# them whole gradient entries: those layers run the same FP32 code in
# every math mode, and test_cuda.py checks them at 1e-4.
SMOOTH = [c for c in LAYERS if "conv" in c[1] and not any(
    word in c[1] for word in ("relu", "maxpool", "batchnorm", "residual", "concat"))]


@pytest.mark.parametrize("layers", [c[1] for c in SMOOTH], ids=[c[0] for c in SMOOTH])
def test_layer_close_to_cpu(layers):
    """A training forward and backward: logits and every parameter
    gradient within NORM_TOLERANCE of the CPU's FP32 (backward data and
    filter in bfloat16; conv_big_kernel sends a gradient through one
    convolution into another)."""
    cpu, gpu = pair(layer_spec(layers), seed=3)
    x = images(3, cpu.input_shape)
    g = logit_grads(3, 3)
    for m in (cpu, gpu):
        m.train()
        m.zero_grad()
    assert relative(gpu.forward(x), cpu.forward(x)) < NORM_TOLERANCE, "logits"
    cpu.backward(g)
    gpu.backward(g)
    want = cpu.grads()
    for name, got in gpu.grads().items():
        if np.abs(want[name]).max() > 0:
            assert relative(got, want[name]) < NORM_TOLERANCE, name


TRAINING_SPEC = ("input 3x16x16, conv 8 3 pad 1, conv 8 3 stride 2 pad 1, "
                 "conv 6 3 stride 2, avgpool 3, flatten, linear 6")


def test_training_steps_follow_the_cpu():
    """Three SGD steps on each backend from the same weights (a network
    without near-ties, see SMOOTH): the weights' changes agree within
    NORM_TOLERANCE, and the master weights stay FP32 (changes smaller than
    half a bfloat16 step survive)."""
    cpu, gpu = pair(TRAINING_SPEC, seed=15)
    before = cpu.state_dict()
    x = images(4, cpu.input_shape, seed=16)
    y = (np.random.default_rng(17).random((4, cpu.outputs)) < 0.4).astype(np.float32)
    optimizers = [ich.Optimizer(m, "sgd", **SGD) for m in (cpu, gpu)]
    for m in (cpu, gpu):
        m.train()
    for _ in range(3):
        for m, opt in zip((cpu, gpu), optimizers):
            m.zero_grad()
            _, grad = ich.bce_with_logits(m.forward(x), y)
            m.backward(grad)
            opt.step()
    after_cpu, after_gpu = cpu.state_dict(), gpu.state_dict()
    changed = 0
    for name, value in before.items():
        if not np.issubdtype(value.dtype, np.floating):
            continue
        step_cpu = after_cpu[name].astype(np.float64) - value
        step_gpu = after_gpu[name].astype(np.float64) - value
        if np.abs(step_cpu).max() == 0:
            continue
        changed += 1
        assert relative(step_gpu, step_cpu) < NORM_TOLERANCE, name
        # FP32 master weights: updates below a bfloat16 step are kept
        tiny = (step_gpu != 0) & (np.abs(step_gpu) < bf16_ulp(value) / 2)
        assert tiny.any() or value.size < 100, name
    assert changed == 8
