"""Stochastic depth (droppath) against PyTorch, and the spec side of the
issue-14 normalisation layers (layernorm2d, layernorm, layerscale,
droppath): defaults, options, names, initial values.

Drop path draws its mask from libich's generator, not PyTorch's, so the
reference is torchvision's StochasticDepth(p, "row") formula given libich's
mask: the mask is read back from libich's logits (for each sample exactly
one of "kept" and "dropped" gives them), then the logits and every gradient
are compared with float64 PyTorch given that mask. The drop rate is checked
statistically, and the masks for reproducibility across seeds and steps."""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("torch")

import layer_sweep  # noqa: E402
from layer_sweep import Conv, LayerNorm2d, LayerScale, Linear, Relu, Residual  # noqa: E402

import ich  # noqa: E402
import kinks  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

torch.set_num_threads(1)


class DropPath(layer_sweep.Layer):
    """libich's droppath P; in PyTorch the StochasticDepth "row" formula with
    a given per-sample mask (set before the forward)."""

    def __init__(self, p):
        self.p = p

    def spec(self):
        return "droppath %r" % self.p

    def torch(self, cin):
        p = self.p

        class DP(nn.Module):
            mask = None

            def forward(self, x):
                if DP.mask is None or len(DP.mask) != x.shape[0]:
                    return x  # torch_net's dry run sizing the linear layers
                m = torch.as_tensor(DP.mask, dtype=x.dtype).reshape(-1, 1, 1, 1)
                return x * m / (1.0 - p)

        self.module = DP
        return DP(), cin


def torch_reference(layers, shape, state, x, g, mask):
    net = layer_sweep.torch_net([Conv(shape[0], 1, bias=False)] + layers + [Linear(3)],
                                shape[0], shape).double()
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)).to(
        torch.float64 if v.dtype == np.float32 else torch.int64) for k, v in state.items()})
    for layer in layers:
        if isinstance(layer, DropPath):
            layer.module.mask = mask
        for sub in getattr(layer, "body", []):
            if isinstance(sub, DropPath):
                sub.module.mask = mask
    net.train()
    out = net(torch.from_numpy(x).double())
    (out * torch.from_numpy(g).double()).sum().backward()
    return out.detach().numpy(), {k: p.grad.numpy() for k, p in net.named_parameters()}


def read_mask(layers, shape, state, x, logits):
    """libich's per-sample mask: for each sample, which of kept (1) and
    dropped (0) gives libich's logits (exactly one must)."""
    n = x.shape[0]
    outs = [torch_reference(layers, shape, state, x, np.zeros((n, 3), np.float32),
                            np.full(n, v))[0] for v in (0.0, 1.0)]
    mask = []
    for i in range(n):
        fits = [kinks.elementwise(logits[i], o[i], 1e-4, 1e-3) is None for o in outs]
        assert sum(fits) == 1, "sample %d: kept %s, dropped %s" % (i, fits[1], fits[0])
        mask.append(1.0 if fits[1] else 0.0)
    return np.array(mask)


CASES = [
    # (id, layers, input shape, batch, threads)
    ("alone", lambda: [DropPath(0.4)], (4, 6, 6), 16, 1),
    ("after_conv", lambda: [Conv(5, 3, 1, 1), DropPath(0.5), Relu()], (3, 7, 7), 12, 2),
    ("convnext_block", lambda: [Residual([Conv(6, 3, 1, 1), LayerNorm2d(), Conv(12, 1), Relu(),
                                          Conv(6, 1), LayerScale(), DropPath(0.3)])],
     (6, 5, 5), 16, 2),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_droppath_matches_pytorch_with_its_mask(case):
    name, make, shape, n, threads = case
    layers = make()
    ich.set_threads(threads)
    model = ich.Model(layer_sweep.full_spec(layers, shape))
    state = layer_sweep.initial_state(model, 7)
    model.load_state_dict(state)
    rng = np.random.default_rng(11)
    model.train()
    seen = set()
    for step in range(3):  # a fresh mask each training step, backward with the same one
        x = rng.standard_normal((n,) + shape).astype(np.float32)
        g = rng.standard_normal((n, 3)).astype(np.float32)
        model.zero_grad()
        logits = model.forward(x)
        model.backward(g)
        mask = read_mask(layers, shape, state, x, logits)
        seen.add(tuple(mask))
        want_logits, want_grads = torch_reference(layers, shape, state, x, g, mask)
        assert kinks.elementwise(logits, want_logits, 1e-4, 1e-3) is None
        failures, _ = kinks.gradient_failures(model.grads(), want_grads, 1e-4, 1e-3)
        assert not failures, failures
    assert len(seen) > 1, "the same mask at every step"
    # evaluation: the identity (the reference's mask 1 - p undoes its scale)
    model.eval()
    p = [l for l in layers + getattr(layers[0], "body", []) if isinstance(l, DropPath)][0].p
    x = rng.standard_normal((n,) + shape).astype(np.float32)
    want, _ = torch_reference(layers, shape, state, x, np.zeros((n, 3), np.float32),
                              np.full(n, 1.0 - p))
    assert kinks.elementwise(model.forward(x), want, 1e-4, 1e-3) is None


def drop_rows(model, x):
    out = model.forward(x)
    return np.all(out == 0, axis=1)


def test_droppath_rate_scale_and_reproducibility():
    p, n = 0.3, 4000
    model = ich.Model("input 2x3x3, droppath 0.3, flatten")
    model.init_weights(5)
    model.train()
    x = np.random.default_rng(0).uniform(1, 2, (n, 2, 3, 3)).astype(np.float32)
    out = model.forward(x)
    dropped = np.all(out == 0, axis=1)
    # whole samples only: a sample is all zeros or all scaled by 1 / (1 - p)
    kept = out[~dropped].reshape(-1, 2, 3, 3)
    np.testing.assert_allclose(kept, x[~dropped] / np.float32(1 - p), rtol=1e-6)
    sd = math.sqrt(n * p * (1 - p))
    assert abs(dropped.sum() - n * p) < 4.5 * sd, dropped.sum()
    # the next step draws another mask, the same seed the same masks again
    second = drop_rows(model, x)
    assert (second != dropped).sum() > n * 0.2
    model.init_weights(5)
    assert (drop_rows(model, x) == dropped).all()
    model.init_weights(6)
    assert (drop_rows(model, x) != dropped).sum() > n * 0.2
    # evaluation: the identity, exactly
    model.eval()
    np.testing.assert_array_equal(model.forward(x), x.reshape(n, -1))


def test_droppath_steps_survive_a_checkpoint(tmp_path):
    spec = "input 2x2x2, conv 2 1, droppath 0.5, flatten"
    model = ich.Model(spec)
    model.init_weights(3)
    model.train()
    x = np.ones((64, 2, 2, 2), np.float32)
    model.forward(x)
    path = str(tmp_path / "m.safetensors")
    model.save(path)
    after = drop_rows(model, x)
    loaded = ich.Model.load(path)
    loaded.train()
    assert (drop_rows(loaded, x) == after).all()


def test_spec_defaults_options_and_names():
    m = ich.Model("input 4x5x5, layernorm2d, layerscale, droppath 0.1, gap, flatten, layernorm, "
                  "linear 3, layernorm eps 0.001, b = layerscale init 0.25, "
                  "layernorm2d eps 1e-05")
    assert m.spec == ("input 4x5x5, layernorm2d, layerscale, droppath 0.1, gap, flatten, "
                      "layernorm, linear 3, layernorm eps 0.001, b = layerscale init 0.25, "
                      "layernorm2d eps 1e-05")
    assert ich.Model(m.spec).spec == m.spec
    m.init_weights(1)
    s = m.state_dict()
    assert {k: v.shape for k, v in s.items()} == {
        "ln2d1.weight": (4,), "ln2d1.bias": (4,), "ls1.layer_scale": (4, 1, 1),
        "ln1.weight": (4,), "ln1.bias": (4,), "fc1.weight": (3, 4), "fc1.bias": (3,),
        "ln2.weight": (3,), "ln2.bias": (3,), "b.layer_scale": (3, 1, 1),
        "ln2d2.weight": (3,), "ln2d2.bias": (3,)}
    assert (s["ls1.layer_scale"] == np.float32(1e-6)).all()
    assert (s["b.layer_scale"] == np.float32(0.25)).all()
    assert (s["ln1.weight"] == 1).all() and (s["ln1.bias"] == 0).all()
    # torchvision CNBlock's name: the item named after the block
    assert "features.1.0.layer_scale" in ich.Model(
        "input 3x4x4, features.1.0 = layerscale, flatten").state_dict()


@pytest.mark.parametrize("spec, words", [
    ("input 3x4x4, layernorm", "flat input"),
    ("input 3x4x4, droppath 1", "drop probability"),
    ("input 3x4x4, droppath", "drop probability"),
    ("input 3x4x4, layernorm2d eps 0", "bad eps"),
    ("input 3x4x4, layerscale init x", "bad init"),
    ("input 3x4x4, layerscale eps 1", "unknown option"),
])
def test_spec_errors(spec, words):
    with pytest.raises(ich.IchError) as e:
        ich.Model(spec)
    assert words in str(e.value)


def test_layernorm2d_matches_torchvision_convnext_layernorm():
    """The same numbers as torchvision's own LayerNorm2d (ConvNeXt's), eval."""
    tv = pytest.importorskip("torchvision.models.convnext")
    ref = tv.LayerNorm2d(5, eps=1e-6).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.3, 0.3)
    m = ich.Model("input 5x4x3, n = layernorm2d, flatten")
    m.load_state_dict({"n." + k: v.float().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((3, 5, 4, 3)).astype(np.float32)
    m.eval()
    want = ref(torch.from_numpy(x).double()).flatten(1).detach().numpy()
    assert kinks.elementwise(m.forward(x), want, 1e-5, 1e-3) is None


def test_builder_knows_the_layers():
    b = ich.ModelBuilder(3, 8, 8).conv(4, 3, padding=1).layer("layernorm2d") \
        .layer("layerscale", name="features.1.0").item("droppath 0.2").gap().flatten() \
        .layer("layernorm").linear(2)
    assert b.spec == ("input 3x8x8, conv 4 3 stride 1 pad 1, layernorm2d, "
                      "features.1.0 = layerscale, droppath 0.2, gap, flatten, layernorm, "
                      "linear 2")
    assert "features.1.0.layer_scale" in b.build().state_dict()
    with pytest.raises(ich.IchError) as e:
        b.layer("droppath")
    assert "layerscale" in str(e.value)
