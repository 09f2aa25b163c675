"""EfficientNetV2-S and -M against torchvision 0.14 (issue 14, item 2).

The libich network is the preset ("efficientnet_v2_s input 3x64x64 outputs
6") when the preset registry knows the name, otherwise the spec that
nn/presets_efficientnet.c writes, read from the white-box test program
(build/tests/test_presets_efficientnet --write-specs). Both are the
full-depth networks at a small input (3x64x64, batch 2, 2 threads):

- the state_dict names, shapes and dtypes equal torchvision's
  (efficientnet_v2_s/_m(num_classes=6)), num_batches_tracked included;
- torchvision's state_dict (seeded random weights and batch-norm
  statistics), written as safetensors, loads unchanged (strict) and the
  evaluation-mode logits agree within 1e-4 relative;
- one training step (batch statistics; loss = sum of logits times fixed
  random weights) gives the same gradients within 1e-3 relative (to the
  largest gradient of the same module: see the test) and the same running
  statistics. Randomness is off on both sides for it:
  torchvision's Dropout and StochasticDepth p set to 0, and libich's spec
  with every dropout / droppath probability 0 (the evaluation comparison
  keeps the real probabilities: both are the identity there);
- libich's checkpoint loads back into torchvision with strict=True and
  gives the same logits.
"""

import os
import re
import subprocess

import numpy as np
import pytest

import ich

from safetensors_ref import read_safetensors, write_safetensors

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

NAMES = ["efficientnet_v2_s", "efficientnet_v2_m"]
SHAPE = (3, 64, 64)
OUTPUTS = 6
BATCH = 2



def _spec_from_generator(name, tmp_dir):
    """The generator's spec, through the white-box test program."""
    build = os.path.dirname(os.path.dirname(ich.library_path()))
    program = os.path.join(build, "tests", "test_presets_efficientnet")
    if not os.path.exists(program):
        pytest.skip("preset %s not registered and %s not built" % (name, program))
    subprocess.run([program, "--write-specs", str(tmp_dir), *map(str, SHAPE), str(OUTPUTS)],
                   check=True)
    with open(os.path.join(str(tmp_dir), name + ".spec")) as f:
        return f.read()


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """{name: canonical spec} of the libich networks."""
    out = {}
    for name in NAMES:
        try:
            model = ich.Model.preset("%s input %dx%dx%d outputs %d" % (name, *SHAPE, OUTPUTS))
        except ich.IchError:
            model = ich.Model(_spec_from_generator(name, tmp_path_factory.mktemp("specs")))
        with model:
            out[name] = model.spec
    return out


def no_randomness(spec):
    return re.sub(r"\b(dropout|droppath) [0-9.eE+-]+", r"\1 0", spec)


# ---- the torchvision network --------------------------------------------------

def torch_net(name, seed):
    """torchvision's network with seeded random weights and batch-norm
    statistics (its own init leaves them 1, 0, 0, 1)."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, name)(num_classes=OUTPUTS)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=g))
                module.bias.copy_(0.1 * torch.randn(n, generator=g))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                module.running_var.copy_(0.5 + torch.rand(n, generator=g))
                module.num_batches_tracked.fill_(7)
            elif isinstance(module, torch.nn.Conv2d) and module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=g))
            elif isinstance(module, torch.nn.Linear):
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=g))
    return net


def state_of(net):
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def images(seed):
    return np.random.default_rng(seed).standard_normal((BATCH,) + SHAPE).astype(np.float32)


def assert_close(a, b, rtol, what="", scale=None):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    scale = max(np.abs(b).max() if scale is None else scale, 1e-30)
    err = np.abs(a - b).max() / scale
    assert err <= rtol, "%s: max |difference| / max |torch| = %.3g > %g" % (what, err, rtol)


@pytest.fixture(autouse=True)
def _threads():
    ich.set_threads(2)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)
    ich.set_threads(0)


# ---- tests -------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_state_dict_names_and_shapes(specs, name):
    expected = getattr(torchvision.models, name)(num_classes=OUTPUTS).state_dict()
    with ich.Model(specs[name]) as model:
        state = model.state_dict()
    assert sorted(state) == sorted(expected)
    assert list(state) == list(expected)  # state_dict order too
    for key, tensor in expected.items():
        assert tuple(state[key].shape) == tuple(tensor.shape), key
        assert state[key].dtype == (np.int64 if tensor.dtype == torch.int64 else np.float32), key
    # batch-norm eps/momentum and stochastic depth as torchvision's
    net = getattr(torchvision.models, name)(num_classes=OUTPUTS)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in bns} == {(1e-3, 0.1)}
    assert specs[name].count("batchnorm") == len(bns)
    assert specs[name].count("batchnorm eps 0.001") == len(bns)
    ps = [float(p) for p in re.findall(r"stochastic_depth = droppath ([0-9.eE+-]+)", specs[name])]
    used = [blk.stochastic_depth.p for stage in net.features[1:-1] for blk in stage
            if blk.use_res_connect and blk.stochastic_depth.p > 0]
    np.testing.assert_allclose(ps, used, rtol=1e-6)
    dropout = float(re.search(r"classifier\.0 = dropout ([0-9.]+)", specs[name]).group(1))
    assert dropout == net.classifier[0].p


@pytest.mark.parametrize("name", NAMES)
def test_torch_weights_logits_and_checkpoint_back(specs, name, tmp_path):
    net = torch_net(name, seed=11).eval()
    path = tmp_path / "torch.safetensors"
    write_safetensors(path, state_of(net))
    x = images(5)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    with ich.Model(specs[name]) as model:
        model.load_weights(path, strict=True)
        model.eval()
        logits = model.forward(x)
        assert_close(logits, expected, 1e-4, "logits")
        out = tmp_path / "libich.safetensors"
        model.save(out)
    back = getattr(torchvision.models, name)(num_classes=OUTPUTS).eval()
    back.load_state_dict({k: torch.from_numpy(v) for k, v in read_safetensors(out).items()},
                         strict=True)
    for key, value in back.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), net.state_dict()[key].numpy(), key)
    with torch.no_grad():
        assert_close(back(torch.from_numpy(x)).numpy(), expected, 1e-6, "logits back")


@pytest.mark.parametrize("name", NAMES)
def test_training_step_gradients(specs, name, tmp_path):
    net = torch_net(name, seed=23)
    path = tmp_path / "torch.safetensors"
    write_safetensors(path, state_of(net))
    net.classifier[0].p = 0.0
    for module in net.modules():
        if isinstance(module, torchvision.ops.StochasticDepth):
            module.p = 0.0
    net.train()
    x = images(9)
    weights = np.random.default_rng(4).standard_normal((BATCH, OUTPUTS)).astype(np.float32)
    out = net(torch.from_numpy(x))
    (out * torch.from_numpy(weights)).sum().backward()
    with ich.Model(no_randomness(specs[name])) as model:
        model.load_weights(path, strict=True)
        model.train()
        model.zero_grad()
        logits = model.forward(x)
        assert_close(logits, out.detach().numpy(), 1e-4, "training-mode logits")
        model.backward(weights)
        grads = model.grads()
        state = model.state_dict()
    named = dict(net.named_parameters())
    assert sorted(grads) == sorted(named)
    # Relative to the largest gradient of the module's parameters (a batch
    # norm's weight and bias together): the bias of a batch norm whose
    # every path onward goes through a 1x1 convolution into a
    # training-mode batch norm (the projections from features.3's last
    # block on) has an analytic gradient of exactly 0, which both sides
    # compute as float32 rounding noise (|g| ~ 1e-6, 1e-6 of the weight's).
    modules = {}
    for key, param in named.items():
        module = key.rsplit(".", 1)[0]
        modules[module] = max(modules.get(module, 0.0), float(param.grad.abs().max()))
    for key, param in named.items():
        assert_close(grads[key], param.grad.numpy(), 1e-3, key,
                     scale=modules[key.rsplit(".", 1)[0]])
    for key, value in net.state_dict().items():
        if key.endswith(("running_mean", "running_var")):
            assert_close(state[key], value.numpy(), 1e-4, key)
        elif key.endswith("num_batches_tracked"):
            assert int(state[key]) == int(value) == 8, key
