"""The cascade model (issue 14 item 4): one backbone per stage with
torchvision's names under "any." and "subtype.", the stage queries, and
one stage at a time (Model.set_active_stage)."""
import numpy as np
import pytest

import ich

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


def images(n, shape, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


def randomized(net, seed):
    """A torchvision net with random batch-norm statistics and affine
    (else eval mode is nearly the identity there), in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()


def test_default_stages_have_torchvisions_names():
    """The plain preset: efficientnet_v2_m decides "any", convnext_tiny the
    subtypes, 3x256x256; every tensor is torchvision's (num_classes 1 and
    5) under the stage's prefix, with its shape (the order inside a
    ConvNeXt block differs: the layer scale comes after the block)."""
    model = ich.Model.preset("cascade")
    assert model.input_shape == (3, 256, 256)
    assert model.cascade_stages == 2
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    want = {}
    for prefix, net in [("any.", torchvision.models.efficientnet_v2_m(num_classes=1)),
                        ("subtype.", torchvision.models.convnext_tiny(num_classes=5))]:
        want.update({prefix + k: tuple(v.shape) for k, v in net.state_dict().items()})
    assert shapes == want
    assert model.cascade_stage(0) == ich.CascadeStage("any.", 0, 1)
    assert model.cascade_stage(1) == ich.CascadeStage("subtype.", 1, 5)


def test_stages_are_the_torchvision_nets():
    """Each stage, loaded from torchvision's weights under its prefix, gives
    torchvision's logits (eval mode); run alone it gives the same logits
    bit for bit and zeros for the other stage."""
    model = ich.Model.preset("cascade", any="resnet18", subtype="convnext_tiny", size=64)
    assert model.spec.startswith("input 3x64x64, cascade(any: conv1 = conv 64 7")
    torch.manual_seed(0)
    nets = [randomized(torchvision.models.resnet18(num_classes=1), 1),
            randomized(torchvision.models.convnext_tiny(num_classes=5), 2)]
    state = {}
    for prefix, net in zip(("any.", "subtype."), nets):
        state.update({prefix + k: v.numpy() for k, v in net.state_dict().items()})
    model.load_state_dict(state)
    x = images(2, model.input_shape)
    with torch.no_grad():
        want = np.concatenate([net(torch.from_numpy(x)).numpy() for net in nets], axis=1)
    got = model.eval().forward(x)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    for stage in (0, 1):
        info = model.cascade_stage(stage)
        columns = slice(info.first_output, info.first_output + info.outputs)
        alone = model.set_active_stage(stage).forward(x)
        assert model.active_stage == stage
        assert np.array_equal(alone[:, columns], got[:, columns])
        rest = np.ones(6, bool)
        rest[columns] = False
        assert (alone[:, rest] == 0).all()
    model.set_active_stage(None)
    assert model.active_stage == -1
    assert np.array_equal(model.forward(x), got)


def test_one_stage_trains_alone():
    """Training mode, stage s alone: its logits and gradients equal a
    both-stage pass whose other-stage gradient is 0; the other stage's
    gradients stay 0 and its batch-norm statistics unchanged."""
    spec = ich.Model.preset("cascade", any="small", subtype="small", size=64).spec
    x = images(3, (3, 64, 64), seed=2)
    g = np.random.default_rng(3).standard_normal((3, 6)).astype(np.float32)
    for stage in (0, 1):
        both, alone = ich.Model(spec).train(), ich.Model(spec).train()
        alone.set_active_stage(stage)
        info = both.cascade_stage(stage)
        other = both.cascade_stage(1 - stage).prefix
        columns = slice(info.first_output, info.first_output + info.outputs)
        start = alone.state_dict()
        both.zero_grad()
        alone.zero_grad()
        out_both, out_alone = both.forward(x), alone.forward(x)
        assert np.array_equal(out_alone[:, columns], out_both[:, columns])
        masked = np.zeros_like(g)
        masked[:, columns] = g[:, columns]
        both.backward(masked)
        alone.backward(g)  # the other stage's columns are ignored
        grads_both, grads_alone = both.grads(), alone.grads()
        for name, grad in grads_alone.items():
            if name.startswith(other):
                assert (grad == 0).all(), name
            else:
                assert name.startswith(info.prefix)
                assert np.array_equal(grad, grads_both[name]), name
                assert np.abs(grad).max() > 0, name
        after = alone.state_dict()
        for name, value in after.items():
            if name.startswith(other):
                assert np.array_equal(value, start[name]), name
            elif "running_mean" in name:
                assert not np.array_equal(value, start[name]), name
        # predict gates: the "any" stage alone lets 0.5 through where it
        # fires; the subtypes alone are all gated off (P(any) = 0.5)
        p = alone.eval().predict(x)
        if stage == 1:
            assert (p[:, 1:] == 0).all() and (p[:, 0] == 0.5).all()
        else:
            fires = p[:, 0] > 0.5
            assert (p[fires, 1:] == 0.5).all() and (p[~fires, 1:] == 0).all()


def test_not_a_cascade_and_bad_stages():
    model = ich.Model.preset("ichnet")
    assert model.cascade_stages == 0
    assert model.active_stage == -1
    with pytest.raises(ich.InvalidArgumentError):
        model.cascade_stage(0)
    with pytest.raises(ich.InvalidArgumentError):
        model.set_active_stage(0)
    model.set_active_stage(-1)  # both: nothing to do
    cascade = ich.Model.preset("cascade", any="small", subtype="small")
    for bad in (2, -2):
        with pytest.raises(ich.InvalidArgumentError):
            cascade.set_active_stage(bad)
        with pytest.raises(ich.InvalidArgumentError):
            cascade.cascade_stage(bad)


def test_preset_options():
    old = ("input 3x256x256, cascade(any: conv 16 3 stride 2 pad 1 nobias, batchnorm, relu, "
           "maxpool 2, conv 32 3 pad 1 nobias, batchnorm, relu, maxpool 2, conv 64 3 pad 1 "
           "nobias, batchnorm, relu, gap, linear 1 | subtype: conv 16 3 stride 2 pad 1 nobias, "
           "batchnorm, relu, maxpool 2, conv 32 3 pad 1 nobias, batchnorm, relu, maxpool 2, "
           "conv 64 3 pad 1 nobias, batchnorm, relu, gap, linear 5)")
    small = ich.Model.preset("cascade", any="small", subtype="small")
    assert small.spec == ich.Model(old).spec  # the first cascade's checkpoints
    assert ich.Model.preset("cascade any small subtype small").spec == small.spec
    gray = ich.Model.preset("cascade", channels=1, any="small", subtype="ichnet")
    assert gray.input_shape == (1, 256, 256)
    assert "subtype.res4.shortcut.conv1.weight" in gray.state_dict()
    assert ich.Model.preset("cascade", size=(96, 128), any="small",
                            subtype="tutorial").input_shape == (3, 96, 128)
    for kw in ({"any": "nope"}, {"subtype": "cascade"}, {"outputs": 6}):
        with pytest.raises(ich.InvalidArgumentError):
            ich.Model.preset("cascade", **kw)
