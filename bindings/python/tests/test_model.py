"""Tests of ich.Model against PyTorch (Debian's python3-torch) modules with
the same state_dict names: the presets' names and shapes, forward outputs,
parameter gradients and batch norm statistics."""

import os
import sys

import numpy as np
import pytest

import ich

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

torch.set_num_threads(2)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "bench"))
import torch_twins  # noqa: E402  (the twins of the presets)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "tests"))
import kinks  # noqa: E402  (comparing gradients across ReLU kinks)


# ---- PyTorch twins of the presets ----------------------------------------

TWINS = torch_twins.TWINS
# The twins' "cascade" is libich's first cascade: two small stages, today
# "cascade any small subtype small" (the plain "cascade" preset is the
# pipeline's efficientnet_v2_m + convnext_tiny pair).
PRESET_TEXT = {"cascade": "cascade any small subtype small"}


def preset(name):
    return ich.Model.preset(PRESET_TEXT.get(name, name))


def randomize(module, seed):
    """Non-trivial batch norm parameters and statistics (defaults are 1/0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("running_var") or (".bn" in "." + name and name.endswith("weight")):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("running_mean") or (".bn" in "." + name and name.endswith("bias")):
                t.copy_(0.2 * torch.randn(t.shape, generator=g))
    return module


def twin_pair(name, seed=0, spec=None, **kw):
    torch.manual_seed(seed)
    net = randomize(TWINS[name](**kw), seed)
    model = ich.Model(spec) if spec else preset(name)
    model.load_state_dict({k: v.numpy() for k, v in net.state_dict().items()})
    return net, model


def assert_close(a, b, rtol=1e-4, what=""):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    scale = max(np.abs(b).max(), 1e-12)
    err = np.abs(a - b).max() / scale
    assert err <= rtol, "%s: relative error %.3g" % (what, err)


def images(n, shape, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


# ---- spec -----------------------------------------------------------------

@pytest.mark.parametrize("spec, words", [
    ("conv 4 3, relu", ["item 1", "input"]),
    ("input 1x8x8, conv 4", ["item 2", "kernel"]),
    ("input 1x8x8, conv 4 3 strde 2", ["item 2", "strde"]),
    ("input 1x8x8, wobble 3", ["wobble", "known"]),
    ("input 1x8x8, conv 4 3,, flatten, linear 2", ["item 3", "empty"]),
    ("input 1x8x8, dropout 1.5, flatten, linear 2", ["item 2", "probability"]),
    ("input 1x8x8, residual(conv 1 3 pad 1; conv 1 1), flatten, linear 2", ["shortcut"]),
    ("input 1x8x8, concat(conv 1 3, flatten, linear 2), flatten", ["two branches"]),
    ("input 1x8x8, residual(conv 2 3 pad 1, flatten, linear 2", ["missing ')'"]),
    ("input 1x8", ["item 1", "CxHxW"]),
])
def test_spec_errors_name_the_item(spec, words):
    with pytest.raises(ich.InvalidArgumentError) as info:
        ich.Model(spec)
    for word in words:
        assert word in str(info.value)
    assert "position" in str(info.value)


@pytest.mark.parametrize("spec, message", [
    ("input 1x8x8, conv 4 9, flatten, linear 2", "does not fit"),
    ("input 1x8x8, conv 4 3, linear 2", "flat"),
    ("input 1x8x8, conv 4 3", "flat"),
    ("input 1x8x8, residual(conv 2 3 pad 1), flatten, linear 2", "shortcut"),
])
def test_shape_errors(spec, message):
    with pytest.raises(ich.ShapeError) as info:
        ich.Model(spec)
    assert message in str(info.value)


def test_duplicate_names_and_unknown_preset():
    with pytest.raises(ich.InvalidArgumentError, match="a"):
        ich.Model("input 1x8x8, a = conv 2 3, a = conv 2 3, flatten, linear 2")
    with pytest.raises(ich.NotFoundError, match="tutorial"):
        ich.Model.preset("nope")
    assert ich.Model.preset("TUTORIAL").outputs == 6


def test_canonical_spec_round_trip():
    spec = ("input 2x20x18\n conv 8 3x5 stride 2 pad 1x2 dilation 1 nobias, bn,  relu,"
            "maxpool 3 stride 2 pad 1, stem = conv 8 1 ,"
            "residual(conv 8 3 pad 1, batchnorm eps 0.001 momentum 0.2, relu; shortcut: avgpool 1),"
            "concat(left: conv 4 1 | conv 4 3 pad 1, relu), gap, dropout 0.25, head = fc 3")
    m = ich.Model(spec)
    canonical = m.spec
    assert canonical.startswith("input 2x20x18, conv 8 3x5 stride 2 pad 1x2 nobias, batchnorm")
    assert "stem = conv 8 1" in canonical and "left: conv 4 1" in canonical
    again = ich.Model(canonical)
    assert again.spec == canonical
    assert {k: v.shape for k, v in again.state_dict().items()} == \
        {k: v.shape for k, v in m.state_dict().items()}
    names = list(m.state_dict())
    assert "stem.weight" in names and "res1.bn1.running_var" in names
    assert "left.conv1.weight" in names and "cat1.branch2.conv1.weight" in names
    assert "head.weight" in names and "bn1.num_batches_tracked" in names
    for name in TWINS:
        p = preset(name)
        assert ich.Model(p.spec).spec == p.spec


# ---- presets against PyTorch ---------------------------------------------

@pytest.mark.parametrize("name", sorted(TWINS))
def test_preset_state_dict_matches_pytorch(name):
    model = preset(name)
    ours = model.state_dict()
    theirs = TWINS[name]().state_dict()
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert ours[key].shape == tuple(value.shape), key
        assert ours[key].dtype == value.numpy().dtype, key
    # PyTorch's default init law: |w| <= 1/sqrt(fan_in), batch norm 1/0
    fc = ours[[k for k in ours if k.endswith("fc1.weight")][0]]
    assert np.abs(fc).max() <= 1 / np.sqrt(fc.shape[1]) + 1e-7
    assert np.abs(fc).max() > 0.5 / np.sqrt(fc.shape[1])
    if name != "tutorial":
        key = [k for k in ours if k.endswith("bn1.weight")][0]
        assert (ours[key] == 1).all()
    # libich's weights load into PyTorch
    net = TWINS[name]()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})


@pytest.mark.parametrize("name, n", [("tutorial", 1), ("ichnet", 2), ("cascade", 2)])
def test_forward_matches_pytorch(name, n):
    net, model = twin_pair(name)
    x = images(n, model.input_shape)
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(x)).numpy()
    got = model.eval().forward(x)
    assert got.shape == (n, 6)
    assert_close(got, want, what=name)


def grads_of(net, x, weights):
    net.zero_grad()
    out = net(torch.from_numpy(x))
    (out * torch.from_numpy(weights)).sum().backward()
    return out.detach().numpy(), {k: p.grad.numpy() for k, p in net.named_parameters()}


# Gradients are compared on reduced inputs (the specs allow any input
# size): on a full 512 x 512 image, max pooling's 3 million windows hold a
# few near-ties whose arg-max differs between any two float32 computations
# (PyTorch's float32 against its float64 gives 4e-3 there), which moves the
# first conv's weight gradient by far more than 1e-4.
@pytest.mark.parametrize("name, n, side, kw", [
    ("tutorial", 2, 128, {"side": 4}),
    ("ichnet", 3, 64, {"dropout": 0.0}),
    ("cascade", 3, 64, {}),
])
def test_gradients_match_pytorch(name, n, side, kw):
    spec = preset(name).spec.replace("dropout 0.2, ", "")
    assert "dropout" not in spec
    spec = spec.replace("x512x512", "x%dx%d" % (side, side)).replace("x256x256",
                                                                     "x%dx%d" % (side, side))
    assert "x%dx%d" % (side, side) in spec
    net, model = twin_pair(name, spec=spec, **kw)
    x = images(n, model.input_shape, seed=3)
    w = np.random.default_rng(4).standard_normal((n, 6)).astype(np.float32)
    net.train()
    want_out, _ = grads_of(net, x, w)
    # the reference gradients in double precision
    net64 = randomize(TWINS[name](**kw), 0).double()
    net64.load_state_dict(twin_pair(name, spec=spec, **kw)[0].state_dict())
    net64.train()
    net64.zero_grad()
    (net64(torch.from_numpy(x).double()) * torch.from_numpy(w).double()).sum().backward()
    want = {k: p.grad.numpy() for k, p in net64.named_parameters()}
    model.train()
    model.zero_grad()
    out = model.forward(x)
    assert_close(out, want_out, what="train forward")
    model.backward(w)  # loss = sum(w * logits): d loss / d logits = w
    got = model.grads()
    # element by element, or as ReLU kink flips allow (tests/kinks.py): an
    # activation within a rounding error of 0 sends its gradient one way in
    # float64 and the other in float32 on some CPUs' kernels
    failures, _ = kinks.gradient_failures(got, want, 1e-4, floor=1e-12)
    assert not failures, "\n".join(failures)
    # batch norm running statistics follow PyTorch's update
    state = model.state_dict()
    for key, value in net64.state_dict().items():
        if "running" in key or "num_batches" in key:
            assert_close(state[key], value.numpy(), what=key)


def test_gradients_accumulate_and_zero():
    net, model = twin_pair("cascade")
    x = images(2, model.input_shape)
    w = np.ones((2, 6), np.float32)
    model.train()
    model.zero_grad()
    model.forward(x)
    model.backward(w)
    once = model.grads()
    model.forward(x)
    model.backward(w)
    twice = model.grads()
    for key in once:
        assert_close(twice[key], 2 * once[key], what=key)
    model.zero_grad()
    assert all((g == 0).all() for g in model.grads().values())
    with pytest.raises(ich.InvalidArgumentError):
        model.backward(w)  # no training forward since the last backward


def test_freeze_leaves_gradients_zero():
    model = preset("cascade").train()
    assert model.freeze("any.") == 11
    x = images(2, model.input_shape)
    model.zero_grad()
    model.forward(x)
    model.backward(np.ones((2, 6), np.float32))
    grads = model.grads()
    assert all((g == 0).all() for k, g in grads.items() if k.startswith("any."))
    assert all(np.abs(g).max() > 0 for k, g in grads.items() if k.startswith("subtype."))
    assert model.unfreeze("any.") == 11
    with pytest.raises(ich.NotFoundError):
        model.freeze("nothing.")


def test_batch_size_change():
    net, model = twin_pair("ichnet")
    x = images(3, model.input_shape)
    all3 = model.eval().forward(x)
    one = model.forward(x[1:2])
    assert_close(one, all3[1:2], rtol=1e-5)
    assert_close(model.forward(x), all3, rtol=1e-6)


def test_train_and_eval_batch_norm():
    net, model = twin_pair("cascade")
    x = images(4, model.input_shape)
    model.train()
    net.train()
    with torch.no_grad():
        want_train = net(torch.from_numpy(x)).numpy()
    got_train = model.forward(x)
    assert_close(got_train, want_train, what="train")
    model.eval()
    net.eval()
    with torch.no_grad():
        want_eval = net(torch.from_numpy(x)).numpy()
    got_eval = model.forward(x)
    assert_close(got_eval, want_eval, what="eval")
    assert np.abs(got_eval - got_train).max() > 1e-3  # batch vs running statistics


def test_cascade_predict_gating():
    model = preset("cascade")
    state = model.state_dict()
    x = images(4, model.input_shape)
    logits = model.forward(x)
    # shift the "any" logit so that samples 0, 1 fire and 2, 3 do not
    bias = state["any.fc1.bias"]
    order = np.argsort(-logits[:, 0])
    mid = (logits[order[1], 0] + logits[order[2], 0]) / 2
    state["any.fc1.bias"] = bias - mid
    model.load_state_dict(state)
    prob = model.predict(x)
    sig = 1 / (1 + np.exp(-(logits - np.r_[mid, np.zeros(5)])))
    fire = sig[:, 0] >= 0.5
    assert fire.sum() == 2
    assert_close(prob[:, 0], sig[:, 0], rtol=1e-5)
    assert_close(prob[fire, 1:], sig[fire, 1:], rtol=1e-5)
    assert (prob[~fire, 1:] == 0).all()
    # a plain model is not gated
    plain = ich.Model.preset("ichnet")
    xi = images(2, plain.input_shape)
    assert_close(plain.predict(xi), 1 / (1 + np.exp(-plain.forward(xi))), rtol=1e-5)


def test_dropout_steps_and_metadata():
    model = ich.Model("input 1x4x4, flatten, dropout 0.5, linear 3")
    meta = model.metadata
    assert meta["ich.spec"] == model.spec
    assert meta["ich.steps"] == "0"
    x = images(2, model.input_shape)
    model.train()
    a = model.forward(x)
    b = model.forward(x)
    assert meta["ich.steps"] == "2"
    assert np.abs(a - b).max() > 0  # a fresh mask each step
    # restoring the step count replays the same mask
    meta["ich.steps"] = "1"
    assert_close(model.forward(x), b, rtol=0)
    meta["ich.labels"] = "any,epidural"
    assert dict(meta)["ich.labels"] == "any,epidural"
    del meta["ich.labels"]
    assert "ich.labels" not in meta
    with pytest.raises(ich.FormatError):
        meta["ich.steps"] = "1,2"
    model.eval()
    c = model.forward(x)
    assert_close(model.forward(x), c, rtol=0)  # no dropout in eval


def test_bad_inputs():
    model = ich.Model("input 1x4x4, flatten, linear 3")
    with pytest.raises(ich.ShapeError):
        model.forward(np.zeros((1, 1, 4, 5), np.float32))
    with pytest.raises(ich.ShapeError):
        model.train().forward(np.zeros((1, 1, 4, 4), np.float32))
        model.backward(np.zeros((1, 2), np.float32))
    with pytest.raises(TypeError):
        ich.Model(3)


def test_save_load_round_trip(tmp_path):
    model = ich.Model("input 1x6x6, conv 2 3, batchnorm, relu, flatten, dropout 0.5, fc = linear 3")
    model.init_weights(5)
    model.metadata["ich.labels"] = "a,b,c"
    model.train().forward(images(2, model.input_shape))  # a dropout step
    path = tmp_path / "m.safetensors"
    try:
        model.save(path)
    except ich.UnsupportedError:
        pytest.skip("this libich has no checkpoint code yet")
    back = ich.Model.load(path)
    assert back.spec == model.spec
    assert back.metadata["ich.labels"] == "a,b,c"
    assert back.metadata["ich.steps"] == "1"
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value)
    x = images(2, model.input_shape, seed=9)
    np.testing.assert_array_equal(back.train().forward(x), model.forward(x))


def test_specs_too_large_to_hold_are_refused_before_allocating():
    # A checkpoint's spec comes from a file: a hostile one must not make the
    # library allocate (and the kernel overcommit) terabytes.
    with pytest.raises(ich.InvalidArgumentError, match="too large"):
        ich.Model("input 4096x64x64, conv 4096 64, gap, linear 2")
    with pytest.raises(ich.InvalidArgumentError, match="too large"):
        ich.Model("input 1x32768x32768, conv 8 3, gap, linear 2")


def test_tutorial_three_adam_steps_match_pytorch():
    """The issue's check: the tutorial ConvNet's forward output, BCE loss,
    gradients and the weights after each of three Adam steps equal
    PyTorch's for the same weights and input, within 1e-4 relative. The
    input is 128 x 128 instead of 512 x 512 (the same layers; fc1 sees
    72 x 4 x 4): at full size max pooling's near-ties differ between any
    two float32 computations (see test_gradients_match_pytorch).

    Each step starts the PyTorch twin from libich's weights of that step
    (its Adam keeps its own moments across the steps). Comparing two
    trajectories that each run on their own is not well posed: Adam divides
    each gradient by its own running RMS, so an element whose gradient is
    ~0 (a dead ReLU path) moves by about +-lr whatever its size, float32
    rounding decides the sign, and the next gradients then differ (by 3e-3
    relative after two steps on one machine).

    The weights after each step are compared as tensors (||a - b|| / ||b||
    <= 1e-4) and element by element: within 1e-4 of the tensor's largest
    weight, except elements whose gradient was below the gradient
    tolerance at some step (the flips above), at most 1 in 1,000, and
    those within the 2 * lr a flip can cost."""
    side = 128
    spec = ich.Model.preset("tutorial").spec.replace("x512x512", "x%dx%d" % (side, side))
    net, model = twin_pair("tutorial", seed=5, spec=spec, side=4)
    x = images(3, model.input_shape, seed=6)
    y = (np.random.default_rng(7).uniform(size=(3, 6)) < 0.4).astype(np.float32)
    optimizer = ich.Optimizer(model, "adam", lr=1e-3)
    torch_optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    net.train()
    near_zero = {}
    for step in range(3):
        with torch.no_grad():  # in place: the optimizer keeps its moments
            for name, p in net.named_parameters():
                p.copy_(torch.from_numpy(model.state_dict()[name]))
        logits = model.forward(x)
        loss, grad = ich.bce_with_logits(logits, y)
        model.zero_grad()
        model.backward(grad)
        torch_optimizer.zero_grad()
        torch_logits = net(torch.from_numpy(x))
        torch_loss = loss_fn(torch_logits, torch.from_numpy(y))
        torch_loss.backward()
        assert_close(logits, torch_logits.detach().numpy(), what="step %d logits" % step)
        assert_close(loss, torch_loss.item(), what="step %d loss" % step)
        grads = model.grads()
        for name, p in net.named_parameters():
            assert_close(grads[name], p.grad.numpy(), what="step %d grad %s" % (step, name))
            noise = np.abs(grads[name]) <= 1e-4 * np.abs(grads[name]).max()
            near_zero[name] = near_zero.get(name, False) | noise
        optimizer.step()
        torch_optimizer.step()
        state = model.state_dict()
        for name, p in net.named_parameters():
            what = "weights after step %d: %s" % (step, name)
            want = p.detach().numpy()
            diff = np.abs(state[name] - want)
            norm_error = np.linalg.norm(diff) / np.linalg.norm(want)
            assert norm_error <= 1e-4, "%s: %.3g" % (what, norm_error)
            off = diff > 1e-4 * np.abs(want).max()
            assert off.sum() <= max(1, want.size // 1000), "%s: %d off" % (what, off.sum())
            assert not (off & ~near_zero[name]).any(), "%s: %d off, gradient not near 0" % (
                what, (off & ~near_zero[name]).sum())
            assert diff.max() <= 2 * 1e-3 * 1.001, what


def test_builder_makes_the_same_networks_as_specs():
    b = ich.ModelBuilder(1, 512, 512)
    for out, kernel in ((50, 5), (120, 5), (100, 5), (72, 4)):
        b.conv(out, kernel).relu().pool("maxpool", 2)
    model = b.flatten().linear(50).relu().linear(6).build()
    assert model.spec == ich.Model.preset("tutorial").spec
    small = (ich.ModelBuilder(3, 16, 16).conv(8, 3, padding=1, name="stem")
             .begin("residual").conv(8, 3, padding=1).batchnorm().end()
             .gap().linear(6, name="head").build())
    assert "stem.weight" in small.state_dict() and "res1.conv1.weight" in small.state_dict()
    with pytest.raises(ich.InvalidArgumentError):
        ich.ModelBuilder(3, 16, 16).end()
    with pytest.raises(ich.InvalidArgumentError):
        ich.ModelBuilder(3, 16, 16).begin("residual").build()


def test_builder_activations_and_squeeze_excitation():
    """silu, gelu, sigmoid and the scale block from the builder: the spec
    torchvision's SqueezeExcitation(8, 2, activation=SiLU) maps to, its
    state_dict names, and a scale block has no second sequence."""
    model = (ich.ModelBuilder(3, 16, 16).conv(8, 3, padding=1).gelu()
             .begin("scale").gap().conv(2, 1, name="fc1").silu().conv(8, 1, name="fc2")
             .sigmoid().end().silu().gap().linear(6).build())
    assert model.spec == ("input 3x16x16, conv 8 3 pad 1, gelu, scale(gap, fc1 = conv 2 1, "
                          "silu, fc2 = conv 8 1, sigmoid), silu, gap, linear 6")
    names = set(model.state_dict())
    assert {"scale1.fc1.weight", "scale1.fc1.bias", "scale1.fc2.weight",
            "scale1.fc2.bias"} <= names
    with pytest.raises(ich.InvalidArgumentError):
        ich.ModelBuilder(3, 16, 16).begin("scale").gap().next()




def test_cascade_gate_uses_the_decision_rule():
    """The cascade's subtypes count only where "any" is predicted, p > 0.5:
    P(any) = 0.5 exactly (a logit of 1e-8) zeroes them, as the metrics and
    training accuracy count it negative; the next logit up lets them through."""
    model = ich.Model("input 1x4x4, flatten, cascade(any: linear 1 | subtype: linear 5)")
    model.init_weights(1)
    state = model.state_dict()
    bias = [k for k in state if k.endswith("bias") and state[k].shape == (1,)][0]
    weight = bias.replace("bias", "weight")
    x = np.ones((1, 1, 4, 4), np.float32)
    for logit, gated in [(1e-8, True), (1e-6, False)]:
        model.load_state_dict({weight: np.zeros_like(state[weight]),
                               bias: np.full((1,), logit, np.float32)}, strict=False)
        p = model.predict(x)
        assert (p[0, 0] > 0.5) == (not gated)
        assert np.all(p[0, 1:] == 0) == gated


# ---- grouped and depthwise convolution ------------------------------------------

def test_grouped_conv_is_pytorchs(tmp_path):
    """conv ... groups G: the builder writes it, the state_dict has
    PyTorch's names and shapes (a torch module with the same layers loads it
    strictly and gives the same logits), and the default initialisation
    draws from PyTorch's bound, 1/sqrt(fan_in) with fan_in = IN/G * KH * KW.
    (Values and gradients over a sweep of shapes: tests/sweep.)"""
    model = (ich.ModelBuilder(8, 10, 10).conv(16, 3, padding=1, groups=4)
             .conv(32, 5, stride=2, padding=2, groups=16, name="dw").relu()
             .conv(8, 1).gap().linear(3).build())
    assert model.spec == ("input 8x10x10, conv 16 3 pad 1 groups 4, "
                          "dw = conv 32 5 stride 2 pad 2 groups 16, relu, conv 8 1, gap, "
                          "linear 3")

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(8, 16, 3, padding=1, groups=4)
            self.dw = nn.Conv2d(16, 32, 5, stride=2, padding=2, groups=16)
            self.conv3 = nn.Conv2d(32, 8, 1)  # named layers count in the numbering
            self.fc1 = nn.Linear(8, 3)

        def forward(self, x):
            x = self.conv3(F.relu(self.dw(self.conv1(x))))
            return self.fc1(x.mean((2, 3)))

    twin = Twin()
    state = model.state_dict()
    assert {k: v.shape for k, v in state.items()} == \
        {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    x = np.random.default_rng(3).standard_normal((2, 8, 10, 10)).astype(np.float32)
    model.eval()
    with torch.no_grad():
        want = twin.double()(torch.from_numpy(x).double()).numpy()
    np.testing.assert_allclose(model.forward(x), want, rtol=0, atol=1e-5)
    # a checkpoint keeps the groups (its spec) and the grouped weights
    path = os.path.join(str(tmp_path), "grouped.safetensors")
    model.save(path)
    again = ich.Model.load(path)
    assert again.spec == model.spec
    np.testing.assert_array_equal(again.eval().forward(x), model.forward(x))

    fresh = Twin()  # PyTorch's own initialisation, for its bounds
    for seed in (1, 2):
        model.init_weights(seed)
        state = model.state_dict()
        for name, ref in fresh.named_parameters():
            layer = getattr(fresh, name.split(".")[0])
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            bound = 1 / np.sqrt(fan_in)
            largest = np.abs(state[name]).max()
            assert largest <= bound * (1 + 1e-6), (name, largest, bound)
            if ref.numel() >= 32:  # the draws reach the bound (P(miss) = 0.8^32 < 1e-3)
                assert largest > 0.8 * bound, (name, largest, bound)
            assert np.abs(ref.detach().numpy()).max() <= bound * (1 + 1e-6)



# ---- Winograd inference (ICH_CPU_WINOGRAD, <ich/backend.h>) -----------------

@pytest.mark.parametrize("setting", ["auto", "0"])
def test_winograd_inference_matches_pytorch(setting, monkeypatch):
    """Evaluation-mode forwards of 5x5 stride-1 convolutions with 16 or more
    channels run Winograd F(4x4,5x5) by default (ICH_CPU_WINOGRAD=auto) and
    oneDNN's direct kernels with 0; both give PyTorch's values (float64)
    within 1e-4, on odd sizes (tiles cut at the edge), paddings 2 and 1x0,
    batches 1 and 3. The debug log names the layers that run Winograd."""
    monkeypatch.setenv("ICH_CPU_WINOGRAD", setting)
    messages = []
    ich.set_log_callback(lambda level, text: messages.append(text), ich.LOG_DEBUG)
    try:
        model = ich.Model("input 16x13x11, conv 24 5 pad 2, relu, conv 20 5 pad 1x0, flatten")
        if model.backend != "cpu":
            pytest.skip("the CPU backend's setting")
        twin = nn.Sequential(nn.Conv2d(16, 24, 5, padding=2), nn.ReLU(),
                             nn.Conv2d(24, 20, 5, padding=(1, 0)), nn.Flatten())
        state = model.state_dict()
        twin.load_state_dict({k: torch.from_numpy(v) for k, v in
                              zip(twin.state_dict(), state.values())})
        model.eval()
        for n in (1, 3):
            x = images(n, model.input_shape, seed=n)
            with torch.no_grad():
                want = twin.double()(torch.from_numpy(x).double()).numpy()
            assert_close(model.forward(x), want, what="ICH_CPU_WINOGRAD=%s batch %d" % (setting, n))
    finally:
        ich.set_log_callback(None)
    ran = {m.split(":")[0] for m in messages if "uses Winograd" in m}
    assert ran == (set() if setting == "0" else {"conv1", "conv2"}), messages
