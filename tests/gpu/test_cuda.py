"""The CUDA backend (libich-cuda.so) against the CPU backend.

Each test builds the same network twice, once per backend
(``ich.use_backend("cpu")``, then ``"cuda"``: a model runs where it was
created), gives both the same weights (the CPU model's ``state_dict``
copied into the GPU model) and the same inputs, and compares logits,
parameter gradients, batch-norm running statistics, training steps and
checkpoints. Tolerance, per tensor: ``max|cuda - cpu| <= 1e-4 *
max(1, max|cpu|)`` (full FP32 on both sides; integer buffers exactly).

Every test is skipped, with the reason libich gives, where the CUDA
backend cannot start (no GPU, no driver, no plugin), and when
``ICH_CUDA_TF32=1`` (TensorFloat-32 is about 1e-3 relative: not comparable
at 1e-4). Fixed seeds throughout; a few seconds on a GPU machine (the
``tutorial`` preset's CPU side takes most of it).

    ICH_LIBRARY=build/libich/libich.so.0 python3 -m pytest -q -rs tests/gpu
"""

import os
import sys

import numpy as np
import pytest

import ich

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import kinks  # noqa: E402  (tests/kinks.py)

RTOL = 1e-4


def _cuda_info():
    try:
        return ich.backend_info("cuda"), None
    except ich.IchError as e:
        return None, "%s: %s" % (type(e).__name__, e)


CUDA_INFO, WHY_NOT = _cuda_info()
if CUDA_INFO is not None and "FP32 math" not in CUDA_INFO:
    WHY_NOT = ("%s: only FP32 math is comparable with the CPU at 1e-4; unset ICH_CUDA_MATH "
               "and ICH_CUDA_TF32 to run these tests (test_cuda_bf16.py covers BF16)"
               % CUDA_INFO)
# Each test is collected and skipped (not the module), so that pytest exits
# 0 where they are all skipped.
pytestmark = pytest.mark.skipif(WHY_NOT is not None,
                                reason="the CUDA backend cannot run here (%s)" % WHY_NOT)

# Every layer kind, a residual block with a batch-normalised conv shortcut
# (gradient accumulation into its input) and a concat: the network of
# bindings/python/tests/test_backend.py.
SPEC = ("input 3x16x16, conv 8 3 pad 1, batchnorm, relu, maxpool 2, "
        "residual(conv 8 3 pad 1 nobias, batchnorm, relu; shortcut: avgpool 1), "
        "concat(conv 4 1 | conv 4 3 pad 1, relu), avgpool 2, dropout 0.25, "
        "flatten, linear 12, relu, linear 6")

# The training steps use SGD with momentum: its update is linear in the
# gradient, so the backends' rounding differences stay that small in the
# weights. Adam moves a weight by about lr * sign(gradient) whatever the
# gradient's size, so where a gradient is zero up to rounding (a conv bias
# followed by batch norm, a dead ReLU path) the two backends' weights part
# by up to 2 lr a step, and the later steps' gradients with them (seen on
# the CPU emulation of CUDA: 1.7e-4 after three steps of the cascade).
# The optimizer is the same host code on both backends (and equals
# PyTorch's bit for bit, bindings/python/tests/test_optim.py): what the
# backend must get right is the gradients, and seeing each step's new
# weights.
SGD = dict(lr=0.05, momentum=0.9)


@pytest.fixture(autouse=True)
def restore_backend():
    yield
    ich.use_backend(None)


# ---- helpers ----------------------------------------------------------------

def assert_close(got, want, what, rtol=RTOL):
    """max|got - want| <= rtol * max(1, max|want|); integer arrays exactly."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, "%s: shape %s (cuda) against %s (cpu)" % (
        what, got.shape, want.shape)
    if want.size == 0:
        return
    if np.issubdtype(want.dtype, np.integer):
        assert np.array_equal(got, want), "%s: %s (cuda) against %s (cpu)" % (what, got, want)
        return
    got = got.astype(np.float64)
    want = want.astype(np.float64)
    assert np.isfinite(got).all(), "%s: the GPU gave non-finite values" % what
    diff = np.abs(got - want)
    worst = int(np.argmax(diff))
    scale = max(1.0, float(np.abs(want).max()))
    assert diff.flat[worst] <= rtol * scale, (
        "%s: max|cuda - cpu| = %.3g > %.3g (= %g * max(1, max|cpu| = %.3g)); worst at flat "
        "index %d: cuda %.9g, cpu %.9g" % (what, diff.flat[worst], rtol * scale, rtol,
                                           float(np.abs(want).max()), worst, got.flat[worst],
                                           want.flat[worst]))


def assert_same_tensors(got, want, what, rtol=RTOL):
    """Two {name: array} dicts (state_dict(), grads()): same names, each
    tensor close."""
    assert list(got) == list(want), "%s: names differ: %s (cuda) against %s (cpu)" % (
        what, list(got), list(want))
    for name in want:
        assert_close(got[name], want[name], "%s %s" % (what, name), rtol)


def assert_gradients_close(got, want, what):
    """assert_same_tensors() for gradients, tolerant of ReLU kink flips
    (tests/kinks.py). Returns True when they agree element by element,
    False when only a kink flip explains the difference."""
    failures, exact = kinks.gradient_failures(got, want, RTOL)
    assert not failures, "%s (cuda against cpu):\n%s" % (what, "\n".join(failures))
    return exact


def model_on(backend, spec=None, preset=None):
    ich.use_backend(backend)
    model = ich.Model.preset(preset) if preset else ich.Model(spec)
    assert model.backend == backend
    return model


def randomize_batchnorm(state, seed):
    """Batch-norm weights, biases and running statistics away from their
    1/0 defaults, so that eval mode and the affine part are really tested."""
    rng = np.random.default_rng(seed)
    for key in list(state):
        if not key.endswith(".running_mean"):
            continue
        prefix = key[: -len(".running_mean")]
        c = state[key].shape
        state[prefix + ".running_mean"] = (0.2 * rng.standard_normal(c)).astype(np.float32)
        state[prefix + ".running_var"] = (0.5 + rng.random(c)).astype(np.float32)
        if prefix + ".weight" in state:
            state[prefix + ".weight"] = (0.5 + rng.random(c)).astype(np.float32)
            state[prefix + ".bias"] = (0.2 * rng.standard_normal(c)).astype(np.float32)
    # layer norm and layer scale parameters too (issue 14)
    for key in sorted(state):
        layer = key.rsplit(".", 2)[-2] if "." in key else ""
        if key.endswith(".layer_scale") or (layer.startswith("ln") and key.endswith(".weight")):
            state[key] = (0.5 + rng.random(state[key].shape)).astype(np.float32)
        elif layer.startswith("ln") and key.endswith(".bias"):
            state[key] = (0.2 * rng.standard_normal(state[key].shape)).astype(np.float32)
    return state


def pair(spec=None, preset=None, seed=0):
    """The same network on the CPU and on the GPU, with the same weights,
    dropout seed (init_weights) and step counters."""
    cpu = model_on("cpu", spec, preset)
    gpu = model_on("cuda", spec, preset)
    cpu.init_weights(seed)
    gpu.init_weights(seed)
    state = randomize_batchnorm(cpu.state_dict(), seed + 1000)
    cpu.load_state_dict(state)
    gpu.load_state_dict(state)
    assert gpu.spec == cpu.spec
    # Parameters live in host memory on both backends: copies are exact.
    copied = gpu.state_dict()
    for name, value in cpu.state_dict().items():
        np.testing.assert_array_equal(copied[name], value, err_msg=name)
    return cpu, gpu


def images(n, shape, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)


def logit_grads(n, outputs, seed=2):
    return np.random.default_rng(seed).standard_normal((n, outputs)).astype(np.float32)


def train_pass(cpu, gpu, x, grad_logits, what):
    """A training forward and backward on both, gradients zeroed first;
    compares logits, running statistics and parameter gradients."""
    for m in (cpu, gpu):
        m.train()
        m.zero_grad()
    want = cpu.forward(x)
    got = gpu.forward(x)
    assert_close(got, want, "%s: training logits" % what)
    # batch norm updated its running statistics (host copies) in forward
    assert_same_tensors(gpu.state_dict(), cpu.state_dict(), "%s: after the training forward:"
                        % what)
    cpu.backward(grad_logits)
    gpu.backward(grad_logits)
    want_grads = cpu.grads()
    assert_gradients_close(gpu.grads(), want_grads, "%s: gradient of" % what)
    return want_grads


def eval_pass(cpu, gpu, x, what):
    for m in (cpu, gpu):
        m.eval()
    assert_close(gpu.forward(x), cpu.forward(x), "%s: evaluation logits" % what)


# ---- the backend itself -----------------------------------------------------------

def test_backend_is_cuda():
    assert CUDA_INFO.startswith("cuda"), CUDA_INFO
    assert ich.use_backend("cuda") == "cuda"
    assert ich.backend() == "cuda"
    assert ich.backend_info() == CUDA_INFO
    assert ich.Model("input 1x4x4, flatten, linear 2").backend == "cuda"
    ich.use_backend("cpu")
    assert ich.Model("input 1x4x4, flatten, linear 2").backend == "cpu"


# ---- every layer kind ---------------------------------------------------------

INPUT = (3, 12, 12)

# (id, layers between the input and "flatten, linear 3")
LAYERS = [
    ("conv", "conv 5 3"),
    ("conv_stride_pad", "conv 6 3 stride 2 pad 1"),
    ("conv_nobias", "conv 6 3 pad 1 nobias"),
    ("conv_dilation", "conv 4 3 pad 2 dilation 2"),
    ("conv_dilation_stride", "conv 4 3 stride 2 dilation 3"),
    ("conv_rectangular", "conv 4 3x5 stride 2x1 pad 1x2"),
    ("conv_1x1", "conv 7 1"),
    ("conv_big_kernel", "conv 3 5 pad 2, conv 4 5 stride 3"),
    ("conv_relu_fused", "conv 6 3 pad 1, relu"),
    ("relu", "conv 4 3 pad 1, maxpool 2, relu"),  # a ReLU of its own (after a pool)
    ("linear", "flatten, linear 10, relu, linear 8 nobias"),
    ("maxpool", "maxpool 2"),
    ("maxpool_input_overlap_pad", "maxpool 3 stride 2 pad 1"),
    ("maxpool_overlap", "conv 4 3 pad 1, maxpool 3 stride 2"),
    ("maxpool_pad", "conv 4 3, maxpool 3 stride 2 pad 1"),
    ("maxpool_stride1_pad", "conv 4 3, maxpool 3 stride 1 pad 1"),
    ("maxpool_after_relu", "conv 4 3 pad 1, relu, maxpool 2"),  # ties among zeros
    ("maxpool_rectangular", "conv 4 3 pad 1, maxpool 2x3 stride 2x2 pad 1x1"),
    ("maxpool_asymmetric", "conv 4 3 pad 1, maxpool 3x2 stride 2x1 pad 1x0"),
    ("avgpool_asymmetric", "conv 4 3 pad 1, avgpool 2x3 stride 1x2 pad 0x1"),
    ("avgpool", "conv 4 3 pad 1, avgpool 2"),
    ("avgpool_pad", "conv 4 3 pad 1, avgpool 3 stride 2 pad 1"),
    ("avgpool_stride1_pad", "conv 4 3, avgpool 3 stride 1 pad 1"),
    ("avgpool_input", "avgpool 3 stride 2 pad 1"),
    ("gap", "conv 6 3, gap"),
    ("batchnorm_input", "batchnorm"),
    ("batchnorm", "conv 6 3 pad 1, batchnorm"),
    ("batchnorm_relu_fused", "conv 6 3 pad 1 nobias, batchnorm, relu"),
    ("batchnorm_options", "conv 5 3, batchnorm eps 0.001 momentum 0.3, relu"),
    ("dropout", "conv 4 3 pad 1, dropout 0.3"),
    ("flatten", "conv 4 3 stride 2"),  # flatten of an NHWC activation
    ("residual_identity", "residual(conv 3 3 pad 1, batchnorm, relu, conv 3 3 pad 1 nobias)"),
    ("residual_shortcut", "conv 4 3 pad 1, residual(conv 6 3 stride 2 pad 1, relu; "
                          "shortcut: conv 6 1 stride 2 nobias, batchnorm), relu"),
    ("residual_pool_shortcut", "conv 4 3 pad 1, residual(conv 4 3 pad 1, batchnorm; "
                               "shortcut: avgpool 1), relu"),
    ("concat", "conv 4 3 pad 1, concat(conv 4 1 | conv 2 3 pad 1, relu | "
               "maxpool 3 stride 1 pad 1)"),
    ("concat_named", "conv 4 3 pad 1, concat(a: conv 3 1 | b: batchnorm, relu)"),
    # issue 14: activations and squeeze-and-excitation (scale block, "mul")
    ("silu", "conv 5 3 pad 1, silu, conv 4 3 stride 2, silu"),
    ("gelu", "conv 5 3 pad 1, gelu, conv 4 3 stride 2, batchnorm, gelu"),
    ("sigmoid", "conv 5 3 pad 1, sigmoid, conv 4 3 stride 2, sigmoid"),
    ("activation_input", "silu, gelu, sigmoid"),
    ("squeeze_excitation", "conv 6 3 pad 1, se = scale(gap, fc1 = conv 2 1, silu, "
                           "fc2 = conv 6 1, sigmoid)"),
    ("squeeze_excitation_mbconv", "conv 4 1, residual(conv 8 1 nobias, batchnorm, silu, "
                                  "scale(gap, fc1 = conv 2 1, silu, fc2 = conv 8 1, sigmoid), "
                                  "conv 4 1 nobias, batchnorm), gelu"),
]

# Layer normalisation, layer scale and stochastic depth (issue 14).
LAYERS += [
    ("layernorm2d", "conv 5 3 pad 1, layernorm2d"),
    ("layernorm2d_input_eps", "layernorm2d eps 0.001, relu"),
    ("layernorm_flat", "conv 6 3, gap, layernorm, flatten, linear 7, layernorm eps 1e-4, relu"),
    ("layerscale", "conv 4 3 stride 2, layerscale"),
    ("droppath", "conv 4 3 pad 1, droppath 0.4"),
    ("convnext_block", "conv 6 2 stride 2, residual(conv 6 3 pad 1, layernorm2d, conv 24 1, "
                       "relu, conv 6 1, layerscale, droppath 0.3), layernorm2d"),
]

# nn.Linear on each position's channels (linear N pointwise, ConvNeXt's
# CNBlock): cuBLAS over the NHWC rows, the bias gradient a product with ones.
LAYERS += [
    ("pointwise_linear_input", "linear 6 pointwise"),
    ("pointwise_linear", "conv 5 3 pad 1, linear 7 pointwise, gelu, linear 4 pointwise nobias"),
    ("pointwise_linear_relu_fused", "conv 5 3 stride 2, linear 9 pointwise, relu"),
    ("convnext_cnblock", "conv 6 2 stride 2, features.1 = residual(0.block.0 = conv 6 7 pad 3 "
                         "groups 6, 0.block.2 = layernorm2d, 0.block.3 = linear 24 pointwise, "
                         "gelu, 0.block.5 = linear 6 pointwise, 0 = layerscale, droppath 0.3), "
                         "layernorm2d"),
]

# Grouped and depthwise convolution (cuDNN's group count).
LAYERS += [
    ("conv_groups_1", "conv 6 3 pad 1 groups 1"),
    ("conv_groups_3", "conv 6 3 pad 1 groups 3"),
    ("conv_groups_stride", "conv 8 3, conv 12 5 stride 2 pad 2 groups 4 nobias"),
    ("conv_groups_1x1_stride", "conv 8 3 pad 1, conv 6 1 stride 2 groups 2"),
    ("conv_depthwise", "conv 3 3 pad 1 groups 3"),
    ("conv_depthwise_x2", "conv 6 5 stride 2 pad 2 groups 3"),
    ("conv_depthwise_dilation", "conv 8 3, conv 8 3 pad 2 dilation 2 groups 8 nobias, relu"),
    ("conv_depthwise_rectangular", "conv 8 3, conv 8 3x5 stride 2x1 pad 1x2 groups 8"),
    ("conv_depthwise_block", "conv 8 1, residual(conv 16 1 nobias, batchnorm, relu, "
                             "conv 16 3 pad 1 groups 16 nobias, batchnorm, relu, "
                             "conv 8 1 nobias, batchnorm)"),
]


def layer_spec(layers):
    return "input %dx%dx%d, %s, flatten, linear 3" % (INPUT + (layers,))


@pytest.mark.parametrize("layers", [c[1] for c in LAYERS], ids=[c[0] for c in LAYERS])
def test_layer_matches_cpu(layers):
    """Training forward (logits, running statistics), backward (every
    parameter gradient), a second training pass (dropout's next mask,
    statistics updated twice), then evaluation (running statistics, no
    dropout)."""
    cpu, gpu = pair(layer_spec(layers), seed=3)
    n = 3
    x = images(n, cpu.input_shape)
    grads = train_pass(cpu, gpu, x, logit_grads(n, 3), "pass 1")
    assert np.abs(grads["fc1.weight"]).max() > 0
    train_pass(cpu, gpu, images(n, cpu.input_shape, seed=4), logit_grads(n, 3, seed=5), "pass 2")
    eval_pass(cpu, gpu, x, "after training")
    assert_same_tensors(gpu.state_dict(), cpu.state_dict(), "after evaluation:")


def test_relu_fused_and_alone_agree():
    """The fused ReLU (conv, batch norm, linear) and the ReLU layer of its
    own compute the same thing on the GPU."""
    fused = "input 3x8x8, conv 4 3 pad 1, relu, flatten, linear 3"
    alone = "input 3x8x8, conv 4 3 pad 1, avgpool 1, relu, flatten, linear 3"
    _, a = pair(fused, seed=6)
    _, b = pair(alone, seed=6)
    b.load_state_dict(a.state_dict())  # same names, same shapes
    x = images(2, a.input_shape)
    g = logit_grads(2, 3)
    for m in (a, b):
        m.train()
        m.zero_grad()
    assert_close(a.forward(x), b.forward(x), "logits")
    a.backward(g)
    b.backward(g)
    assert_same_tensors(a.grads(), b.grads(), "gradient of")


# ---- batch norm and dropout -----------------------------------------------------

def test_batchnorm_statistics_over_several_batches():
    """Running statistics after training forwards of different batch
    sizes (momentum update, unbiased variance, num_batches_tracked), then
    evaluation with them."""
    spec = ("input 2x10x10, conv 6 3 pad 1 nobias, batchnorm momentum 0.2, relu, "
            "conv 5 3 stride 2, batchnorm eps 0.01, flatten, linear 3")
    cpu, gpu = pair(spec, seed=7)
    for i, n in enumerate((4, 2, 5, 1)):
        x = images(n, cpu.input_shape, seed=10 + i)
        train_pass(cpu, gpu, x, logit_grads(n, 3, seed=20 + i), "batch %d (n=%d)" % (i, n))
        state = cpu.state_dict()
        assert state["bn1.num_batches_tracked"] == i + 1
        eval_pass(cpu, gpu, x, "batch %d (n=%d)" % (i, n))
    assert not np.allclose(cpu.state_dict()["bn1.running_mean"],
                           pair(spec, seed=7)[0].state_dict()["bn1.running_mean"])


def test_droppath_draws_the_cpu_mask():
    """Drop path's per-sample mask comes from (model seed, layer, step,
    sample) with the CPU's generator on both backends (cuda/norm.c): the
    same samples are dropped, step after step, and none is half dropped."""
    spec = "input 2x3x3, droppath 0.5, flatten"
    cpu, gpu = pair(spec, seed=8)
    n = 64
    x = (1 + np.random.default_rng(9).random((n, 2, 3, 3))).astype(np.float32)  # no zeros
    for m in (cpu, gpu):
        m.train()
    masks = []
    for step in range(3):
        want, got = cpu.forward(x), gpu.forward(x)
        np.testing.assert_array_equal(got == 0, want == 0, err_msg="step %d" % step)
        dropped = np.all(want == 0, axis=1)
        assert (np.all(want != 0, axis=1) | dropped).all()
        assert 0 < dropped.sum() < n
        assert_close(got, want, "step %d" % step)
        masks.append(tuple(dropped))
    assert len(set(masks)) == 3


def test_dropout_draws_the_cpu_mask():
    """Dropout masks come from (model seed, layer, step, sample) with the
    CPU's generator on both backends (libich/backend/cuda/layers.c), so a
    training step on the GPU drops exactly the values the CPU drops. The
    network passes the input through unchanged (1x1 conv of weight 1,
    identity linear layer), so the logits show the mask itself."""
    spec = "input 1x4x4, conv 1 1 nobias, dropout 0.5, flatten, linear 16 nobias"
    cpu, gpu = pair(spec, seed=8)
    state = cpu.state_dict()
    state["conv1.weight"] = np.ones_like(state["conv1.weight"])
    state["fc1.weight"] = np.eye(16, dtype=np.float32)
    cpu.load_state_dict(state)
    gpu.load_state_dict(state)
    n = 3
    x = (1 + np.random.default_rng(9).random((n, 1, 4, 4))).astype(np.float32)  # no zeros
    masks = []
    for step in range(4):
        want = cpu.train().forward(x)
        got = gpu.train().forward(x)
        kept_cpu, kept_gpu = want != 0, got != 0
        assert (kept_cpu == kept_gpu).all(), (
            "step %d: the GPU's dropout mask differs from the CPU's at %d of %d values; the "
            "backends are meant to draw the same mask for the same seed and step"
            % (step, int((kept_cpu != kept_gpu).sum()), kept_cpu.size))
        assert_close(got, want, "step %d logits" % step)
        # kept values are scaled by 1 / (1 - p) = 2
        np.testing.assert_allclose(got[kept_gpu], 2 * x.reshape(n, 16)[kept_gpu], rtol=1e-6)
        masks.append(kept_gpu)
        g = logit_grads(n, 16, seed=30 + step)
        cpu.zero_grad()
        gpu.zero_grad()
        cpu.backward(g)
        gpu.backward(g)
        assert_gradients_close(gpu.grads(), cpu.grads(), "step %d gradient of" % step)
    assert gpu.metadata["ich.steps"] == cpu.metadata["ich.steps"] == "4"
    assert any((masks[0] != m).any() for m in masks[1:]), "the same mask every step"
    assert 0.2 < np.mean(masks) < 0.8
    # restoring the step counter replays that step's mask on both
    cpu.metadata["ich.steps"] = gpu.metadata["ich.steps"] = "1"
    got = gpu.train().forward(x)
    assert ((got != 0) == masks[1]).all()
    assert_close(got, cpu.train().forward(x), "replayed step 1")
    # evaluation: no dropout
    np.testing.assert_allclose(gpu.eval().forward(x), x.reshape(n, 16), rtol=1e-6)


# ---- batch size, gradients, host-side changes -------------------------------------

def test_batch_size_changes_between_calls():
    cpu, gpu = pair(SPEC, seed=11)
    for i, n in enumerate((4, 1, 7, 2, 4)):
        x = images(n, cpu.input_shape, seed=40 + i)
        train_pass(cpu, gpu, x, logit_grads(n, 6, seed=50 + i), "call %d (n=%d)" % (i, n))
        eval_pass(cpu, gpu, x, "call %d (n=%d)" % (i, n))
        if n > 1:
            # in evaluation each sample's logits do not depend on the batch
            alone = gpu.forward(x[1:2])
            assert_close(alone, gpu.forward(x)[1:2], "n=%d: sample 1 alone" % n)


def test_evaluation_in_slices_of_the_batch(monkeypatch):
    """ICH_INFER_MEMORY slices an evaluation forward on the GPU as on the
    CPU (libich/nn/model.c): the conv's and batch norm's outputs take 1 MiB
    per image each, so 5 MiB runs 7 images as passes of 2, the last one
    overlapping. cuDNN may choose another algorithm for another batch size:
    close, not bit for bit."""
    spec = ("input 1x128x128, conv 16 3 pad 1, batchnorm, relu, maxpool 2, gap, dropout 0.5, "
            "linear 6")
    cpu, gpu = pair(spec, seed=13)
    x = images(7, cpu.input_shape, seed=60)
    monkeypatch.setenv("ICH_INFER_MEMORY", "0")
    want = cpu.eval().forward(x)
    whole = gpu.eval().forward(x)
    monkeypatch.setenv("ICH_INFER_MEMORY", "5")
    for i in range(2):  # the second call reuses the slices' batch size
        sliced = gpu.forward(x)
        assert_close(sliced, want, "call %d: sliced evaluation against the CPU" % i)
        assert_close(sliced, whole, "call %d: sliced evaluation against the whole batch" % i)
    train_pass(cpu, gpu, x, logit_grads(7, 6, seed=61), "training after sliced evaluation")


def test_gradients_accumulate_and_freeze():
    cpu, gpu = pair(SPEC, seed=12)
    x = images(3, cpu.input_shape)
    g = logit_grads(3, 6)
    for m in (cpu, gpu):
        m.train()
        m.zero_grad()
    for i in range(2):  # no zero_grad in between: gradients add up
        assert_close(gpu.forward(x), cpu.forward(x), "forward %d" % i)
        cpu.backward(g)
        gpu.backward(g)
    assert_gradients_close(gpu.grads(), cpu.grads(), "accumulated gradient of")
    gpu.zero_grad()
    assert all((v == 0).all() for v in gpu.grads().values())
    assert gpu.freeze("conv1") == cpu.freeze("conv1") == 2
    for m in (cpu, gpu):
        m.zero_grad()
    assert_close(gpu.forward(x), cpu.forward(x), "forward, conv1 frozen")
    cpu.backward(g)
    gpu.backward(g)
    grads = gpu.grads()
    assert (grads["conv1.weight"] == 0).all() and (grads["conv1.bias"] == 0).all()
    assert_gradients_close(grads, cpu.grads(), "gradient (conv1 frozen) of")


CASCADE = ("input 3x16x16, conv 4 3 pad 1, relu, cascade(any: conv 8 3 pad 1, batchnorm, relu, "
           "maxpool 2, gap, linear 1 | subtype: conv 8 3 pad 1, batchnorm, relu, droppath 0.2, "
           "maxpool 2, flatten, linear 5)")


def test_cascade_one_stage_at_a_time():
    """ich_model_set_active_stage on the plugin: nothing backend specific
    (the stage that is off gets a zero input at the cascade, uploaded with
    to_device, and no gradient): as the CPU, the other stage's logits 0,
    its gradients 0 and its statistics unchanged, in training and eval."""
    cpu, gpu = pair(CASCADE, seed=13)
    x = images(4, cpu.input_shape)
    g = logit_grads(4, 6)
    for stage in (0, 1):
        other = cpu.cascade_stage(1 - stage).prefix
        columns = np.arange(6) != 0 if stage == 0 else np.arange(6) == 0
        start = gpu.state_dict()
        for m in (cpu, gpu):
            m.set_active_stage(stage)
        grads = train_pass(cpu, gpu, x, g, "stage %d" % stage)
        out = gpu.forward(x)  # training mode: another step of the same stage
        assert (out[:, columns] == 0).all()
        gpu.backward(g)
        cpu.forward(x)
        cpu.backward(g)
        assert all((v == 0).all() for k, v in gpu.grads().items() if k.startswith(other))
        assert any(np.abs(v).max() > 0 for k, v in grads.items() if not k.startswith(other))
        after = gpu.state_dict()
        for k, v in after.items():
            if k.startswith(other):
                np.testing.assert_array_equal(v, start[k], err_msg=k)
        eval_pass(cpu, gpu, x, "stage %d" % stage)
        assert (gpu.eval().forward(x)[:, columns] == 0).all()
    for m in (cpu, gpu):
        m.set_active_stage(-1)
    eval_pass(cpu, gpu, x, "both stages")


def test_weights_changed_on_the_host_reach_the_gpu():
    """The GPU keeps device copies of the parameters; init_weights,
    load_state_dict and the optimizer change the host copies."""
    cpu, gpu = pair(SPEC, seed=13)
    x = images(2, cpu.input_shape)
    eval_pass(cpu, gpu, x, "first")
    cpu.init_weights(14)
    gpu.init_weights(14)
    assert_same_tensors(gpu.state_dict(), cpu.state_dict(), "after init_weights:", rtol=0)
    eval_pass(cpu, gpu, x, "after init_weights")
    state = cpu.state_dict()
    for key in state:
        if key.endswith("weight") or key.endswith("running_var"):
            state[key] = state[key] * 1.5
    cpu.load_state_dict(state)
    gpu.load_state_dict(state)
    eval_pass(cpu, gpu, x, "after load_state_dict")


# ---- training and checkpoints -------------------------------------------------------

# The tutorial ConvNet's layers on 128 x 128 images (fc1 sees 72 x 4 x 4):
# at 512 x 512 max pooling's near-ties differ between any two float32
# computations (bindings/python/tests/test_model.py), and the CPU emulation
# of CUDA would take minutes.
TUTORIAL_128 = "tutorial at 128x128"


def tutorial_spec(side):
    ich.use_backend("cpu")
    return ich.Model.preset("tutorial").spec.replace("x512x512", "x%dx%d" % (side, side))


TRAINING = [
    # (id, spec, preset, batch)
    ("small", SPEC, None, 4),
    ("ichnet", None, "ichnet", 2),
    ("cascade", None, "cascade any small subtype small", 2),
    ("tutorial_128", TUTORIAL_128, None, 2),
]


@pytest.mark.parametrize("spec, preset, n", [c[1:] for c in TRAINING],
                         ids=[c[0] for c in TRAINING])
def test_training_steps_and_checkpoints(spec, preset, n, tmp_path):
    """Three SGD steps (forward, BCE, backward, step) on each backend
    from the same weights: same logits and losses every step, same
    gradients at the first, same weights and running statistics after.
    Then a checkpoint written by the GPU model loads on the CPU (and one
    written by the CPU model on the GPU) and predicts the same."""
    if spec == TUTORIAL_128:
        spec = tutorial_spec(128)
    cpu, gpu = pair(spec, preset, seed=15)
    outputs = cpu.outputs
    x = images(n, cpu.input_shape, seed=16)
    y = (np.random.default_rng(17).random((n, outputs)) < 0.4).astype(np.float32)
    opt_cpu = ich.Optimizer(cpu, "sgd", **SGD)
    opt_gpu = ich.Optimizer(gpu, "sgd", **SGD)
    for m in (cpu, gpu):
        m.train()
    rtol = RTOL  # KINK_DRIFT once a kink flip parted the two (tests/kinks.py)
    first = None
    for step in range(3):
        cpu.zero_grad()
        gpu.zero_grad()
        want = cpu.forward(x)
        got = gpu.forward(x)
        assert_close(got, want, "step %d logits" % step, rtol)
        if first is None:
            first = want
        else:  # the step moved the logits far more than the tolerance
            assert np.abs(want - first).max() > 10 * rtol * max(1, np.abs(want).max())
        loss_cpu, grad_cpu = ich.bce_with_logits(want, y)
        loss_gpu, grad_gpu = ich.bce_with_logits(got, y)
        assert_close(loss_gpu, loss_cpu, "step %d loss" % step, rtol)
        cpu.backward(grad_cpu)
        gpu.backward(grad_gpu)
        if step == 0 and not assert_gradients_close(gpu.grads(), cpu.grads(),
                                                    "step 0 gradient of"):
            rtol = kinks.KINK_DRIFT
        opt_cpu.step()
        opt_gpu.step()
    assert opt_gpu.steps == opt_cpu.steps == 3
    after = cpu.state_dict()
    assert_same_tensors(gpu.state_dict(), after, "after 3 steps:", rtol)
    before = pair(spec, preset, seed=15)[0].state_dict()
    assert any(not np.array_equal(after[k], before[k]) for k in after), "training changed nothing"

    # A CUDA checkpoint on the CPU: the same tensors, the same predictions.
    gpu.eval()
    cpu.eval()
    # threshold 0: no cascade gating, which would turn a probability a
    # rounding error either side of the threshold into a difference of 0.5
    p_gpu = gpu.predict(x, threshold=0.0)
    assert_close(p_gpu, cpu.predict(x, threshold=0.0), "predict after training", rtol)
    path = tmp_path / "cuda.safetensors"
    gpu.save(path)
    ich.use_backend("cpu")
    back = ich.Model.load(path)
    assert back.backend == "cpu"
    assert back.spec == gpu.spec
    assert dict(back.metadata) == dict(gpu.metadata)
    loaded = back.state_dict()
    for name, value in gpu.state_dict().items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    assert_close(back.predict(x, threshold=0.0), p_gpu, "predict, CUDA checkpoint on the CPU")
    # and the other way
    path = tmp_path / "cpu.safetensors"
    cpu.save(path)
    ich.use_backend("cuda")
    there = ich.Model.load(path)
    assert there.backend == "cuda"
    assert_close(there.predict(x, threshold=0.0), cpu.predict(x, threshold=0.0),
                 "predict, CPU checkpoint on the GPU")


def test_training_driver_matches_the_cpu(tmp_path):
    """ich.train (the C training driver: dataset batches in the backend's
    pinned host memory, validation, checkpoints) for three epochs on each
    backend from the same weights and the same batches: the same history
    and the same weights after it. The checkpoint the GPU run wrote loads
    on the CPU."""
    folder = tmp_path / "phantom"
    ich.write_phantom(folder, patients=4, slices=6, size=32, seed=4, prevalence=1.0, threads=2)
    spec = ("input 3x32x32, conv 8 3 pad 1, batchnorm, relu, maxpool 2, conv 8 3 pad 1, "
            "relu, gap, flatten, linear 6")
    cpu, gpu = pair(spec, seed=30)
    histories = []
    for m in (cpu, gpu):
        options = dict(window="blood,brain,bone", size=32, batch_size=5, seed=3, workers=1)
        with ich.Dataset(str(folder / "labels.csv"), str(folder / "images"), **options) as train, \
                ich.Dataset(str(folder / "labels.csv"), str(folder / "images"),
                            shuffle=False, **options) as val:
            out = tmp_path / m.backend
            histories.append(ich.train(m, ich.Optimizer(m, "sgd", **SGD), train, val, epochs=3,
                                       schedule=False, checkpoint_dir=out))
    want, got = histories
    for row_cpu, row_gpu in zip(want, got):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert_close(row_gpu[key], row_cpu[key], "epoch %d %s" % (row_cpu["epoch"], key))
    assert want[-1]["train_loss"] < want[0]["train_loss"]
    assert_same_tensors(gpu.state_dict(), cpu.state_dict(), "after ich.train:")
    ich.use_backend("cpu")
    with ich.Model.load(tmp_path / "cuda" / "last.safetensors") as back:
        assert back.backend == "cpu"
        assert_same_tensors(back.state_dict(), gpu.state_dict(), "GPU checkpoint on the CPU:",
                            rtol=0)


def test_ich_train_program_on_the_gpu(tmp_path):
    """The ich-train example with --backend cuda, in FP32 and with --math
    bf16: it says where it runs, trains and writes its checkpoints. It loads
    the libich beside the plugin under test (LD_LIBRARY_PATH before its
    RUNPATH)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    build = Path(os.environ.get("ICH_BUILD_DIR", root / "build"))
    program = build / "examples" / "ich-train"
    if not program.exists():
        pytest.skip("examples not built (%s)" % program)
    library = os.environ.get("ICH_LIBRARY")
    env = dict(os.environ)
    if library:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [os.path.dirname(os.path.abspath(library))] +
            [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
    folder = tmp_path / "phantom"
    ich.write_phantom(folder, patients=2, slices=6, size=32, seed=4, prevalence=1.0, threads=2)
    spec = "input 3x32x32, conv 8 3 pad 1, batchnorm, relu, maxpool 4, flatten, linear 6"
    for math in ("fp32", "bf16"):
        out = tmp_path / math
        result = subprocess.run(
            [str(program), str(folder / "labels.csv"), str(folder / "images"), "--model", spec,
             "--epochs", "2", "--batch-size", "4", "--backend", "cuda", "--math", math,
             "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        assert "running on cuda" in result.stderr + result.stdout
        assert "%s math" % math.upper() in result.stderr + result.stdout
        assert (out / "last.safetensors").exists() and (out / "history.csv").exists()

