"""Every layer of libich's CPU backend against PyTorch, over a sweep of
shapes: values and gradients (input, weights, bias, batch-norm statistics)
for each layer kind x kernel 1/3/5 x stride 1/2 x padding x channel counts
below and above oneDNN's channel blocks (8 on AVX2, 16 on AVX-512) x batch
1/3/16 x threads 1/2, outside and inside residual blocks; grouped and
depthwise convolutions over groups, kernels, strides, batch 1/3 and
threads 1/2 (gconv_cases); ConvNeXt's per-position linear (linear N
pointwise) and its CNBlock (pointwise_cases).

Each case is a small network "input, conv C 1 nobias, LAYERS, flatten,
linear 3" built twice from one description: as a libich spec and as a
PyTorch module with the same state_dict names. The leading 1x1 convolution
has identity weights, so the tested layers see the input unchanged, and
its weight gradient is sum(grad_input * x): the tested layers' input
gradient, which the model API does not expose, shows there. The reference
is PyTorch in float64; libich computes in float32.

Tolerance, per tensor: max|libich - torch| <= 1e-4 * max(1e-3, max|torch|)
element by element, or, where a ReLU or a max pool sits within a rounding
error of its kink (the float64 and float32 computations then pass a
gradient on different sides), the norm bounds of tests/kinks.py.

The libich side needs only numpy, so it can run alone under valgrind:

    python3 tests/sweep/layer_sweep.py --dump out.npz [--small]   # libich only
    python3 tests/sweep/layer_sweep.py --check out.npz [--small]  # against PyTorch

tests/sweep/test_layer_sweep.py runs the whole sweep under pytest.
"""

import argparse
import itertools
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import ich  # noqa: E402
import kinks  # noqa: E402  (tests/kinks.py)

RTOL = 1e-4
FLOOR = 1e-3  # of the scale: max(FLOOR, max|torch|)


# ---- layer descriptions: a libich spec item and a PyTorch module each -------

class Layer:
    kind = None  # libich's numbering prefix ("conv", "fc", "bn", ...), None: no parameters

    def torch(self, cin):
        """(module, output channels)."""
        raise NotImplementedError


class Conv(Layer):
    kind = "conv"

    def __init__(self, out, k, stride=1, pad=0, bias=True, relu=False, groups=None):
        self.out, self.k, self.stride, self.pad, self.bias = out, k, stride, pad, bias
        self.groups = groups  # None: not in the spec (PyTorch's 1)

    def spec(self):
        s = "conv %d %d" % (self.out, self.k)
        if self.stride != 1:
            s += " stride %d" % self.stride
        if self.pad:
            s += " pad %d" % self.pad
        if self.groups is not None:
            s += " groups %d" % self.groups
        return s + ("" if self.bias else " nobias")

    def torch(self, cin):
        import torch.nn as nn
        return nn.Conv2d(cin, self.out, self.k, self.stride, self.pad, bias=self.bias,
                         groups=self.groups or 1), self.out


class Relu(Layer):
    def spec(self):
        return "relu"

    def torch(self, cin):
        import torch.nn as nn
        return nn.ReLU(), cin


class Pool(Layer):
    def __init__(self, kind, k, stride=None, pad=0):
        self.pool, self.k, self.stride, self.pad = kind, k, stride or k, pad

    def spec(self):
        return "%s %d stride %d pad %d" % (self.pool, self.k, self.stride, self.pad)

    def torch(self, cin):
        import torch.nn as nn
        cls = nn.MaxPool2d if self.pool == "maxpool" else nn.AvgPool2d
        return cls(self.k, self.stride, self.pad), cin


class BatchNorm(Layer):
    kind = "bn"

    def spec(self):
        return "batchnorm"

    def torch(self, cin):
        import torch.nn as nn
        return nn.BatchNorm2d(cin), cin


class Gap(Layer):
    def spec(self):
        return "gap"

    def torch(self, cin):
        import torch.nn as nn
        return nn.AdaptiveAvgPool2d(1), cin


class Linear(Layer):
    """flatten, linear OUT (a flatten before it)."""
    kind = "fc"

    def __init__(self, out, bias=True):
        self.out, self.bias = out, bias

    def spec(self):
        return "flatten, linear %d%s" % (self.out, "" if self.bias else " nobias")

    def torch_linear(self, features):
        import torch.nn as nn
        return nn.Linear(features, self.out, bias=self.bias)


class PointwiseLinear(Layer):
    """linear OUT pointwise: nn.Linear on each position's channels, as
    ConvNeXt's CNBlock applies it between its Permutes (weight [out, in])."""
    kind = "fc"

    def __init__(self, out, bias=True):
        self.out, self.bias = out, bias

    def spec(self):
        return "linear %d%s pointwise" % (self.out, "" if self.bias else " nobias")

    def torch(self, cin):
        import torch.nn as nn

        class PW(nn.Linear):
            def forward(self, x):
                return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

        return PW(cin, self.out, bias=self.bias), self.out


class LayerNorm2d(Layer):
    """ConvNeXt's LayerNorm2d: nn.LayerNorm(C) over the channels of NCHW."""
    kind = "ln2d"

    def __init__(self, eps=None):
        self.eps = eps

    def spec(self):
        return "layernorm2d" + ("" if self.eps is None else " eps %r" % self.eps)

    def torch(self, cin):
        import torch.nn as nn

        class LN2d(nn.LayerNorm):
            def forward(self, x):
                return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

        return LN2d(cin, eps=1e-6 if self.eps is None else self.eps), cin


class LayerNormFlat(Layer):
    """nn.LayerNorm(F) over flat features (after gap or linear: F given)."""
    kind = "ln"

    def __init__(self, features, eps=None):
        self.features, self.eps = features, eps

    def spec(self):
        return "layernorm" + ("" if self.eps is None else " eps %r" % self.eps)

    def torch(self, cin):
        import torch.nn as nn

        class LNFlat(nn.LayerNorm):
            def forward(self, x):
                return super().forward(x.flatten(1)).reshape(x.shape)

        return LNFlat(self.features, eps=1e-5 if self.eps is None else self.eps), cin


class LayerScale(Layer):
    """torchvision CNBlock's layer_scale: x * gamma, gamma [C, 1, 1]."""
    kind = "ls"

    def spec(self):
        return "layerscale"

    def torch(self, cin):
        import torch
        import torch.nn as nn

        class LS(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer_scale = nn.Parameter(torch.ones(cin, 1, 1) * 1e-6)

            def forward(self, x):
                return x * self.layer_scale

        return LS(), cin


class Residual(Layer):
    kind = "res"

    def __init__(self, body, shortcut=None):
        self.body, self.shortcut = body, shortcut

    def spec(self):
        s = "residual(" + ", ".join(l.spec() for l in self.body)
        if self.shortcut:
            s += "; shortcut: " + ", ".join(l.spec() for l in self.shortcut)
        return s + ")"

    def torch(self, cin):
        import torch.nn as nn

        class Res(nn.Module):
            def __init__(self, body, shortcut):
                super().__init__()
                self.order, c = populate(self, body, cin)
                if shortcut:
                    self.shortcut = Chain(shortcut, cin)
                self.has_shortcut = bool(shortcut)
                self.channels = c

            def forward(self, x):
                y = run(self, self.order, x)
                return y + (self.shortcut(x) if self.has_shortcut else x)

        m = Res(self.body, self.shortcut)
        return m, m.channels


class Concat(Layer):
    kind = "cat"

    def __init__(self, branches):
        self.branches = branches

    def spec(self):
        return "concat(" + " | ".join(", ".join(l.spec() for l in b) for b in self.branches) + ")"

    def torch(self, cin):
        import torch
        import torch.nn as nn

        class Cat(nn.Module):
            def __init__(self, branches):
                super().__init__()
                self.names = []
                for i, b in enumerate(branches):
                    name = "branch%d" % (i + 1)
                    setattr(self, name, Chain(b, cin))
                    self.names.append(name)

            def forward(self, x):
                return torch.cat([getattr(self, n)(x) for n in self.names], 1)

        m = Cat(self.branches)
        return m, sum(getattr(m, n).channels for n in m.names)


class Act(Layer):
    """silu, gelu (erf form) or sigmoid."""

    def __init__(self, which):
        self.which = which

    def spec(self):
        return self.which

    def torch(self, cin):
        import torch.nn as nn
        return {"silu": nn.SiLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[self.which](), cin


class SqueezeExcitation(Layer):
    """torchvision's SqueezeExcitation(C, S, activation=SiLU) (EfficientNet),
    as libich's scale(gap, fc1 = conv S 1, silu, fc2 = conv C 1, sigmoid);
    `activation` "relu" is torchvision's default (MobileNetV3 aside)."""
    kind = "scale"

    def __init__(self, squeeze, activation="silu"):
        self.squeeze, self.activation = squeeze, activation

    def spec(self):
        return "scale(gap, fc1 = conv %d 1, %s, fc2 = conv %%d 1, sigmoid)" % (
            self.squeeze, self.activation)

    def torch(self, cin):
        import torch.nn as nn
        act = nn.SiLU if self.activation == "silu" else nn.ReLU
        try:
            from torchvision.ops import SqueezeExcitation as SE
        except ImportError:  # the same module, written out
            class SE(nn.Module):
                def __init__(self, c, s, activation):
                    super().__init__()
                    self.avgpool = nn.AdaptiveAvgPool2d(1)
                    self.fc1, self.fc2 = nn.Conv2d(c, s, 1), nn.Conv2d(s, c, 1)
                    self.activation, self.scale_activation = activation(), nn.Sigmoid()

                def forward(self, x):
                    s = self.fc2(self.activation(self.fc1(self.avgpool(x))))
                    return x * self.scale_activation(s)
        return SE(cin, self.squeeze, activation=act), cin


def channels_after(layers, cin):
    """Output channels of a list of layers (for the SE block's fc2)."""
    c = cin
    for layer in layers:
        if isinstance(layer, (Conv, PointwiseLinear)):
            c = layer.out
        elif isinstance(layer, Residual):
            c = channels_after(layer.body, c)
        elif isinstance(layer, Concat):
            c = sum(channels_after(b, c) for b in layer.branches)
    return c


def layers_spec(layers, cin):
    """The spec of a list of layers; an SE block learns its width here."""
    items = []
    c = cin
    for layer in layers:
        if isinstance(layer, SqueezeExcitation):
            items.append(layer.spec() % c)
        elif isinstance(layer, Residual):
            body = layers_spec(layer.body, c)
            text = "residual(" + body
            if layer.shortcut:
                text += "; shortcut: " + layers_spec(layer.shortcut, c)
            items.append(text + ")")
        else:
            items.append(layer.spec())
        c = channels_after([layer], c)
    return ", ".join(items)


def populate(module, layers, cin):
    """Add the layers' PyTorch modules to `module` under libich's names
    (numbered per kind: conv1, conv2, bn1, res1, ...); returns the call order
    and the output channels."""
    counts = {}
    order = []
    c = cin
    for i, layer in enumerate(layers):
        if isinstance(layer, Linear):
            order.append(("flatten", None))
            counts["fc"] = counts.get("fc", 0) + 1
            name = "fc%d" % counts["fc"]
            order.append(("linear", name))
            setattr(module, name, layer)  # replaced once the width is known
            continue
        m, c = layer.torch(c)
        if layer.kind:
            counts[layer.kind] = counts.get(layer.kind, 0) + 1
            name = "%s%d" % (layer.kind, counts[layer.kind])
        else:
            name = "_l%d" % i
        setattr(module, name, m)
        order.append(("module", name))
    return order, c


def run(module, order, x):
    import torch
    for what, name in order:
        if what == "flatten":
            x = torch.flatten(x, 1)
        else:
            x = getattr(module, name)(x)
    return x


def Chain(layers, cin):
    import torch.nn as nn

    class ChainModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.order, self.channels = populate(self, layers, cin)

        def forward(self, x):
            return run(self, self.order, x)

    return ChainModule()


def torch_net(layers, cin, shape):
    """The PyTorch twin; linear layers get their width from a dry run."""
    import torch
    import torch.nn as nn
    net = Chain(layers, cin)
    # size the linear layers: run up to each one with a dummy batch
    linears = [(n, getattr(net, n)) for w, n in net.order if w == "linear"]
    for name, layer in linears:
        delattr(net, name)
    x = torch.zeros((1,) + shape)
    for what, name in net.order:
        if what == "flatten":
            x = torch.flatten(x, 1)
        elif what == "linear":
            lin = dict(linears)[name].torch_linear(x.shape[1])
            setattr(net, name, lin)
            x = lin(x)
        else:
            x = getattr(net, name)(x)
    return net


# ---- the sweep ----------------------------------------------------------------

def conv_cases(small):
    """(id, layers, input shape) for the convolution sweep."""
    # one input channel and a 4x4 or larger kernel (the tutorial's conv1)
    for k, stride, pad in ((5, 1, 0), (4, 2, 1)):
        conv = Conv(7, k, stride, pad)
        tag = "k%d_s%d_p%d_c1to7_12" % (k, stride, pad)
        yield "conv_" + tag, [conv], (1, 12, 12)
        yield "conv_relu_" + tag, [conv, Relu()], (1, 12, 12)
    kernels = (1, 3) if small else (1, 3, 5)
    channels = ((3, 6), (4, 8), (12, 5)) if small else \
        ((3, 6), (4, 8), (5, 17), (8, 16), (12, 5), (16, 16), (20, 24))
    sides = (8,) if small else (12, 11)
    for k, stride, (cin, cout), side in itertools.product(kernels, (1, 2), channels, sides):
        for pad in sorted({0, k // 2}):
            bias = (cin + k + pad) % 2 == 0
            conv = Conv(cout, k, stride, pad, bias)
            tag = "k%d_s%d_p%d_c%dto%d_%d%s" % (k, stride, pad, cin, cout, side,
                                                 "" if bias else "_nobias")
            yield "conv_" + tag, [conv], (cin, side, side)
            yield "conv_relu_" + tag, [conv, Relu()], (cin, side, side)
            if 2 * pad == k - 1:  # same padding: a residual block's output fits its input
                shortcut = None if stride == 1 and cin == cout else \
                    [Conv(cout, 1, stride, 0, bias=False), BatchNorm()]
                yield "residual_" + tag, [Residual([conv, BatchNorm(), Relu(),
                                                    Conv(cout, k, 1, pad)], shortcut), Relu()], \
                    (cin, side, side)
            if k == 1 and stride == 2:  # the shortcut alone, as ichnet has it
                yield "shortcut_" + tag, [Residual([Conv(cout, 3, 2, 1)],
                                                   [Conv(cout, 1, 2, 0, bias=False)])], \
                    (cin, side, side)


def other_cases(small):
    sides = (8,) if small else (12, 11)
    channel_counts = (3, 12) if small else (3, 8, 12, 17)
    for c, side in itertools.product(channel_counts, sides):
        shape = (c, side, side)
        for kind, k, stride, pad in itertools.product(("maxpool", "avgpool"), (2, 3), (1, 2),
                                                      (0, 1)):
            if pad * 2 > k:
                continue
            yield "%s_k%d_s%d_p%d_c%d_%d" % (kind, k, stride, pad, c, side), \
                [Conv(c, 3, 1, 1), Pool(kind, k, stride, pad)], shape
        yield "batchnorm_c%d_%d" % (c, side), [BatchNorm()], shape
        yield "batchnorm_relu_c%d_%d" % (c, side), [Conv(c, 3, 1, 1, bias=False), BatchNorm(),
                                                     Relu()], shape
        yield "relu_after_pool_c%d_%d" % (c, side), [Conv(c, 3, 1, 1), Pool("avgpool", 2),
                                                      Relu()], shape
        yield "gap_c%d_%d" % (c, side), [Conv(c + 1, 3), Gap()], shape
        yield "linear_c%d_%d" % (c, side), [Linear(10), Relu(), Linear(7, bias=False)], shape
        yield "concat_c%d_%d" % (c, side), [Concat([[Conv(4, 1)], [Conv(3, 3, 1, 1), Relu()],
                                                    [Pool("maxpool", 3, 1, 1)]])], shape
        yield "residual_identity_c%d_%d" % (c, side), [
            Residual([Conv(c, 3, 1, 1), BatchNorm(), Relu(), Conv(c, 3, 1, 1, bias=False)]),
            Relu()], shape
        yield "residual_pool_shortcut_c%d_%d" % (c, side), [
            Residual([Conv(c, 3, 1, 1)], [Pool("avgpool", 1)])], shape


def activation_cases(small):
    """Issue 14: silu, gelu, sigmoid and squeeze-and-excitation (scale)."""
    sides = (8,) if small else (12, 11)
    channel_counts = (3, 12) if small else (3, 8, 12, 17)
    for c, side in itertools.product(channel_counts, sides):
        shape = (c, side, side)
        for which in ("silu", "gelu", "sigmoid"):
            # after a conv (values on both sides of 0), then again after a
            # stride-2 conv and a batch norm (its input gradient reaches
            # the first activation through them)
            yield "%s_c%d_%d" % (which, c, side), [
                Conv(c, 3, 1, 1), Act(which), Conv(c + 2, 3, 2, 1), BatchNorm(), Act(which)], shape
        squeeze = max(1, c // 4)
        yield "se_c%d_%d" % (c, side), [Conv(c, 3, 1, 1), SqueezeExcitation(squeeze)], shape
        yield "se_relu_c%d_%d" % (c, side), [SqueezeExcitation(c + 3, "relu")], shape
        # EfficientNet's MBConv: expand, depthwise-less here, SE, project,
        # in a residual block (x reaches the SE's multiply and its squeeze)
        yield "se_residual_c%d_%d" % (c, side), [
            Residual([Conv(2 * c, 1, bias=False), BatchNorm(), Act("silu"),
                      SqueezeExcitation(squeeze), Conv(c, 1, bias=False), BatchNorm()]),
            Act("gelu")], shape


def norm_cases(small):
    """Layer normalisation (over channels and over flat features) and
    layer scale (issue 14), alone, after other layers, in a ConvNeXt-like
    residual block."""
    sides = (8,) if small else (12, 11)
    channel_counts = (3, 12) if small else (3, 8, 12, 17)
    for c, side in itertools.product(channel_counts, sides):
        shape = (c, side, side)
        tag = "c%d_%d" % (c, side)
        yield "layernorm2d_" + tag, [Conv(c, 3, 1, 1), LayerNorm2d()], shape
        yield "layernorm2d_eps_" + tag, [LayerNorm2d(eps=1e-3), Relu()], shape
        yield "layernorm_gap_" + tag, [Conv(c + 1, 3), Gap(), LayerNormFlat(c + 1)], shape
        yield "layernorm_linear_" + tag, [Linear(10), LayerNormFlat(10, eps=1e-4), Relu(),
                                          Linear(7)], shape
        yield "layerscale_" + tag, [Conv(c, 3, 2, 1), LayerScale()], shape
        yield "convnext_block_" + tag, [
            Conv(2 * c, 2, 2),
            Residual([Conv(2 * c, 3, 1, 1), LayerNorm2d(), Conv(8 * c, 1), Relu(),
                      Conv(2 * c, 1), LayerScale()]),
            LayerNorm2d()], shape


def gconv_cases(small):
    """Grouped and depthwise convolution (conv ... groups G): groups 1 (said
    explicitly), 2, 4 and the input channels (depthwise, 1 and 2 filters per
    channel), kernels 3 and 5 (7 in the ConvNeXt block), stride 1 and 2,
    with and without padding, a fused ReLU; strided grouped 1x1
    convolutions (the oneDNN workaround of backend/cpu/conv.c); and the
    blocks the issue's networks are made of (MobileNet/EfficientNet's
    inverted residual, ConvNeXt's depthwise 7x7, ResNeXt's grouped 3x3)."""
    kernels = (3,) if small else (3, 5)
    # (tag, groups, input channels, output channels)
    configs = [("g1", 1, 5, 7), ("g2", 2, 4, 8), ("dw", 8, 8, 8), ("dw2x", 3, 3, 6)] if small \
        else [("g1", 1, 5, 17), ("g2", 2, 4, 8), ("g2", 2, 8, 6), ("g2", 2, 12, 20),
              ("g4", 4, 16, 24), ("g2", 2, 34, 18), ("dw", 3, 3, 3), ("dw", 8, 8, 8),
              ("dw", 16, 16, 16), ("dw", 17, 17, 17), ("dw2x", 3, 3, 6), ("dw2x", 8, 8, 16),
              ("dw2x", 16, 16, 32)]
    sides = (8,) if small else (12, 11)
    for k, stride in itertools.product(kernels, (1, 2)):
        for i, (tag, groups, cin, cout) in enumerate(configs):
            side = sides[i % len(sides)]
            group = "dwconv" if tag.startswith("dw") else "gconv"
            for pad in sorted({0, k // 2}):
                bias = (i + k + pad) % 2 == 0
                conv = Conv(cout, k, stride, pad, bias, groups=groups)
                name = "k%d_s%d_p%d_%s_c%dto%d_%d%s" % (k, stride, pad, tag, cin, cout, side,
                                                        "" if bias else "_nobias")
                yield "%s_%s" % (group, name), [conv], (cin, side, side)
                if pad:
                    yield "%s_relu_%s" % (group, name), [conv, Relu()], (cin, side, side)
    # strided grouped 1x1 convolutions, channels per group below, at and
    # above oneDNN's blocks (the jit_1x1 backward-weights fault)
    for groups, cin, cout in ((2, 10, 10), (2, 32, 32), (4, 64, 32), (12, 12, 24)) if not small \
            else ((2, 10, 10), (2, 32, 32)):
        yield "gconv_k1_s2_g%d_c%dto%d_11" % (groups, cin, cout), \
            [Conv(cout, 1, 2, 0, bias=False, groups=groups)], (cin, 11, 11)
    for c, side in itertools.product((8,) if small else (3, 8, 16), sides):
        e = 4 * c
        yield "mbconv_c%d_%d" % (c, side), [Residual([
            Conv(e, 1, bias=False), BatchNorm(), Relu(),
            Conv(e, 3, 1, 1, bias=False, groups=e), BatchNorm(), Relu(),
            Conv(c, 1, bias=False), BatchNorm()])], (c, side, side)
        yield "mbconv_stride_c%d_%d" % (c, side), [
            Conv(e, 1, bias=False), BatchNorm(), Relu(),
            Conv(e, 5, 2, 2, bias=False, groups=e), BatchNorm(), Relu(),
            Conv(c + 2, 1)], (c, side, side)
        yield "convnext_c%d_%d" % (c, side), [Residual([
            Conv(c, 7, 1, 3, groups=c), BatchNorm(), Conv(e, 1), Relu(), Conv(c, 1)])], \
            (c, side, side)
        yield "resnext_c%d_%d" % (c, side), [Residual([
            Conv(8, 1, bias=False), BatchNorm(), Relu(),
            Conv(8, 3, 1, 1, bias=False, groups=4), BatchNorm(), Relu(),
            Conv(c, 1, bias=False), BatchNorm()]), Relu()], (c, side, side)


def pointwise_cases(small):
    """linear OUT pointwise (ConvNeXt's per-position Linear): alone, with
    and without bias, a fused ReLU, and torchvision's CNBlock (depthwise
    7x7, LayerNorm, Linear 4C, GELU, Linear C, layer scale) in a residual
    block; channel counts below and above the CPU's vector widths."""
    sides = (8,) if small else (12, 11)
    channel_counts = (3, 12) if small else (3, 8, 12, 17)
    for c, side in itertools.product(channel_counts, sides):
        shape = (c, side, side)
        tag = "c%d_%d" % (c, side)
        yield "pwlinear_" + tag, [PointwiseLinear(c + 5)], shape
        yield "pwlinear_nobias_" + tag, [Conv(c, 3, 2, 1), PointwiseLinear(2 * c + 1, bias=False)], \
            shape
        yield "pwlinear_relu_" + tag, [Conv(c, 3, 1, 1), PointwiseLinear(4 * c), Relu(),
                                       PointwiseLinear(c, bias=False), Act("gelu")], shape
        yield "cnblock_" + tag, [
            Conv(2 * c, 2, 2),
            Residual([Conv(2 * c, 7, 1, 3, groups=2 * c), LayerNorm2d(), PointwiseLinear(8 * c),
                      Act("gelu"), PointwiseLinear(2 * c), LayerScale()]),
            LayerNorm2d()], shape


def batches_threads(small):
    return ((1, 1), (3, 2)) if small else ((1, 1), (1, 2), (3, 1), (3, 2), (16, 1), (16, 2))


def cases(small=False):
    """Every case: (id, layers, input shape, batch, threads)."""
    out = []
    for gen in (conv_cases, other_cases, gconv_cases, activation_cases, norm_cases,
                pointwise_cases):
        for i, (name, layers, shape) in enumerate(gen(small)):
            # every case at every batch size and thread count would be
            # ~10,000 cases; each case takes two of the six, in turn, so
            # each (batch, threads) pair meets every layer kind and shape
            pairs = batches_threads(small)
            if gen is gconv_cases:  # batch 1 and 3, threads 1 and 2
                pairs = tuple(p for p in pairs if p[0] in (1, 3))
            picks = (pairs[i % len(pairs)], pairs[(i + 3) % len(pairs)]) if not small \
                else pairs
            for n, threads in picks:
                out.append(("%s_n%d_t%d" % (name, n, threads), layers, shape, n, threads))
    return out


def full_spec(layers, shape):
    body = layers_spec(layers, shape[0])
    return "input %dx%dx%d, conv %d 1 nobias, %s, flatten, linear 3" % (
        shape + (shape[0], body))


def case_data(index, shape, n):
    rng = np.random.default_rng(1000 + index)
    x = rng.standard_normal((n,) + shape).astype(np.float32)
    g = rng.standard_normal((n, 3)).astype(np.float32)
    return x, g


def initial_state(model, index):
    """libich's initial weights (PyTorch's init from a seed), the leading
    conv the identity, batch-norm parameters away from 1/0."""
    model.init_weights(index)
    state = model.state_dict()
    rng = np.random.default_rng(5000 + index)
    c = state["conv1.weight"].shape[0]
    state["conv1.weight"] = np.eye(c, dtype=np.float32).reshape(c, c, 1, 1)
    for key in state:
        if key.endswith("running_var"):
            state[key] = (0.5 + rng.random(state[key].shape)).astype(np.float32)
        elif key.endswith("running_mean"):
            state[key] = (0.2 * rng.standard_normal(state[key].shape)).astype(np.float32)
    for key in list(state):
        prefix = key[:-len(".running_mean")] if key.endswith(".running_mean") else None
        if prefix and prefix + ".weight" in state:
            shape = state[prefix + ".weight"].shape
            state[prefix + ".weight"] = (0.5 + rng.random(shape)).astype(np.float32)
            state[prefix + ".bias"] = (0.2 * rng.standard_normal(shape)).astype(np.float32)
    # layer norm and layer scale parameters away from their initial 1/0/1e-6
    for key in sorted(state):
        layer = key.rsplit(".", 2)[-2] if key.count(".") else ""
        if key.endswith(".layer_scale"):
            state[key] = (0.5 + rng.random(state[key].shape)).astype(np.float32)
        elif layer.startswith("ln") and key.endswith(".weight"):
            state[key] = (0.5 + rng.random(state[key].shape)).astype(np.float32)
        elif layer.startswith("ln") and key.endswith(".bias"):
            state[key] = (0.2 * rng.standard_normal(state[key].shape)).astype(np.float32)
    return state


def run_libich(index, case):
    """Training forward and backward on libich: the initial state, logits,
    gradients and the state after (running statistics)."""
    name, layers, shape, n, threads = case
    ich.set_threads(threads)
    model = ich.Model(full_spec(layers, shape))
    state = initial_state(model, index)
    model.load_state_dict(state)
    x, g = case_data(index, shape, n)
    model.train()
    model.zero_grad()
    out = model.forward(x)
    model.backward(g)
    return {"state": state, "logits": out, "grads": model.grads(), "after": model.state_dict()}


def run_torch(index, case, state):
    import torch
    name, layers, shape, n, threads = case
    net = torch_net([Conv(shape[0], 1, bias=False)] + layers + [Linear(3)], shape[0], shape)
    net = net.double()
    missing = set(net.state_dict()) ^ set(state)
    assert not missing, "%s: state_dict names differ: %s" % (name, sorted(missing))
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)).to(
        torch.float64 if v.dtype == np.float32 else torch.int64) for k, v in state.items()})
    x, g = case_data(index, shape, n)
    net.train()
    out = net(torch.from_numpy(x).double())
    (out * torch.from_numpy(g).double()).sum().backward()
    return {"logits": out.detach().numpy(),
            "grads": {k: p.grad.numpy() for k, p in net.named_parameters()},
            "after": {k: v.numpy() for k, v in net.state_dict().items()}}


# ---- comparison ----------------------------------------------------------------

def elementwise(got, want):
    return kinks.elementwise(got, want, RTOL, FLOOR)


def compare(case, got, want):
    """A list of failures of one case (empty when it passes)."""
    name = case[0]
    failures = []
    e = elementwise(got["logits"], want["logits"])
    if e:
        failures.append("logits: " + e)
    assert sorted(got["grads"]) == sorted(want["grads"]), name
    failures += ["gradient of " + f
                 for f in kinks.gradient_failures(got["grads"], want["grads"], RTOL, FLOOR)[0]]
    for k, v in want["after"].items():
        if "running" in k:
            e = elementwise(got["after"][k], v)
            if e:
                failures.append("%s after the pass: %s" % (k, e))
        elif "num_batches" in k and int(got["after"][k]) != int(v):
            failures.append("%s: %s against %s" % (k, got["after"][k], v))
    # the gradients must be worth checking: every parameter got one
    for k, v in want["grads"].items():
        if not np.abs(v).max() > 0 and "conv" in k and "bias" not in k:
            failures.append("%s: the reference gradient is 0 (a useless case)" % k)
    return ["%s: %s" % (name, f) for f in failures]


def check_cases(selected, results=None):
    """Run libich (or take `results`) and PyTorch on the cases; failures."""
    failures = []
    for index, case in selected:
        got = results[index] if results is not None else run_libich(index, case)
        failures += compare(case, got, run_torch(index, case, got["state"]))
    return failures


# ---- command line: libich alone (valgrind), then the comparison -------------

def flatten_result(prefix, result, out):
    for key in ("logits",):
        out["%s/%s" % (prefix, key)] = result[key]
    for group in ("state", "grads", "after"):
        for k, v in result[group].items():
            out["%s/%s/%s" % (prefix, group, k)] = v


def unflatten(data, index):
    prefix = "%d/" % index
    result = {"state": {}, "grads": {}, "after": {}}
    for key in data.files:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if rest == "logits":
            result["logits"] = data[key]
        else:
            group, name = rest.split("/", 1)
            result[group][name] = data[key]
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="the small-shape sweep")
    p.add_argument("--dump", metavar="NPZ", help="run libich only, save its results")
    p.add_argument("--check", metavar="NPZ", help="compare saved results with PyTorch")
    a = p.parse_args()
    selected = list(enumerate(cases(a.small)))
    if a.dump:
        out = {}
        for index, case in selected:
            flatten_result(str(index), run_libich(index, case), out)
        np.savez(a.dump, **out)
        print("libich: %d cases written to %s" % (len(selected), a.dump))
        return 0
    if a.check:
        data = np.load(a.check)
        results = {i: unflatten(data, i) for i, _ in selected}
    else:
        results = None
    failures = check_cases(selected, results)
    for f in failures:
        print(f)
    print("%d passed, %d failed" % (len(selected) - len({f.split(":")[0] for f in failures}),
                                    len({f.split(":")[0] for f in failures})))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
