"""ConvNeXt-T and ConvNeXt-S (libich/nn/presets_convnext.c) against
torchvision 0.14's convnext_tiny / convnext_small(num_classes=6), at a
small input (3x64x64, batch 2, 2 threads; the full-depth networks):

- the state_dict names and shapes are torchvision's (ConvNeXt has no batch
  norm, so no num_batches_tracked on either side);
- a safetensors file written from torchvision's state_dict (seeded random
  init, layer scales and layer-norm parameters moved away from their
  1e-6 / 1 / 0 so every block counts) loads into the libich model with
  strict=True; evaluation-mode logits agree within 1e-4 relative;
- one training step's gradients (loss sum(logits * g)) agree within 1e-3
  relative per tensor. Stochastic depth draws random masks on both sides,
  so this comparison runs with every drop-path probability 0: torchvision
  built with stochastic_depth_prob=0, libich's spec with its droppath
  layers set to 0 (the same network, no randomness); the default
  probabilities themselves are checked against torchvision's modules;
- libich's checkpoint (ich.Model.save) loads back into torchvision with
  strict=True and gives the same logits.

The spec comes from ich.Model.preset("<name> input 3x64x64 outputs 6")
when the preset registry has the name, else from the generator itself:
the white-box C test build/tests/test_presets_convnext writes it.
"""

import copy
import os
import re
import subprocess

import numpy as np
import pytest

import ich

from safetensors_ref import read_safetensors, write_safetensors

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NAMES = ("convnext_tiny", "convnext_small")
SHAPE = (3, 64, 64)


# ---- the spec --------------------------------------------------------------

def generated_spec(name, tmp_dir):
    """The preset's spec: from the registry, else from the generator."""
    try:
        return ich.Model.preset("%s input %dx%dx%d outputs 6" % ((name,) + SHAPE)).spec
    except ich.IchError:
        pass
    build = os.environ.get("ICH_BUILD_DIR") or os.path.join(REPO, "build")
    exe = os.path.join(build, "tests", "test_presets_convnext")
    if not os.path.exists(exe):
        pytest.skip("neither the %s preset nor %s (build the tests)" % (name, exe))
    subprocess.run([exe, str(tmp_dir)], check=True, capture_output=True)
    with open(os.path.join(str(tmp_dir), name + ".spec")) as f:
        return f.read()


def torchvision_net(name, stochastic_depth_prob=None):
    """Seeded random torchvision model, its layer scales and layer norms
    moved off their initial values; float32, evaluation mode."""
    torch.manual_seed(14)
    kwargs = {} if stochastic_depth_prob is None else \
        {"stochastic_depth_prob": stochastic_depth_prob}
    net = getattr(torchvision.models, name)(num_classes=6, **kwargs)
    g = torch.Generator().manual_seed(15)
    with torch.no_grad():
        for key, p in net.named_parameters():
            if key.endswith("layer_scale"):
                p.copy_(0.05 + 0.1 * torch.rand(p.shape, generator=g))
            elif p.dim() == 1 and ("block.2" in key or "features.0.1" in key or
                                   re.search(r"features\.[246]\.0", key) or
                                   "classifier.0" in key):
                if key.endswith("weight"):
                    p.copy_(0.5 + torch.rand(p.shape, generator=g))
                else:
                    p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return net.eval()


def numpy_state(net):
    return {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}


def images():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2,) + SHAPE).astype(np.float32)
    g = rng.standard_normal((2, 6)).astype(np.float32)
    return x, g


def close(got, want, rtol):
    """max |got - want| <= rtol * max |want| (per tensor); the message if not."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err, scale = np.abs(got - want).max(), np.abs(want).max()
    return None if err <= rtol * scale else "max error %.3g, %.3g relative" % (
        err, err / max(scale, 1e-30))


@pytest.fixture(autouse=True)
def threads():
    ich.set_threads(2)
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("specs")
    return {name: generated_spec(name, tmp) for name in NAMES}


class Reference:
    """One seeded torchvision net per name (building one takes seconds),
    its state as a safetensors file and a libich model loaded from it."""

    def __init__(self, name, spec, folder):
        self.net = torchvision_net(name)
        self.path = str(folder / (name + ".safetensors"))
        write_safetensors(self.path, numpy_state(self.net))
        self.model = ich.Model(spec)
        self.model.load_weights(self.path, strict=True)


@pytest.fixture(scope="module")
def reference(specs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = Reference(name, specs[name], folder)
        return cache[name]

    return get


# ---- the tests ------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_state_dict_names_and_shapes(name, reference):
    ref = reference(name)
    assert ref.model.input_shape == SHAPE
    ours = sorted((k, tuple(v.shape)) for k, v in ref.model.state_dict().items())
    theirs = sorted((k, tuple(v.shape)) for k, v in ref.net.state_dict().items())
    assert ours == theirs


@pytest.mark.parametrize("name", NAMES)
def test_stochastic_depth_and_layer_scale_as_torchvision(name, specs, reference):
    """The drop-path probability of every block, each LayerNorm's eps and
    the layer scales' initial value are torchvision's."""
    net = reference(name).net
    want = {}
    for key, module in net.named_modules():
        if type(module).__name__ == "StochasticDepth":
            want[key] = module.p
        if isinstance(module, torch.nn.LayerNorm):
            assert module.eps == 1e-6, key
    spec = specs[name]
    got = {}
    for stage, body in re.findall(r"(features\.\d+) = residual\((.*?)\)", spec):
        for block, p in re.findall(r"(\d+)\.stochastic_depth = droppath ([0-9.e-]+)", body):
            got["%s.%s.stochastic_depth" % (stage, block)] = float(p)
    assert sorted(k for k, v in want.items() if v > 0) == sorted(got)
    for key, p in got.items():
        assert abs(p - want[key]) <= 1e-6 * want[key], key  # float32 in the spec
    assert "eps" not in spec  # layernorm2d's default, 1e-6
    model = ich.Model(spec)  # freshly initialised
    for key, value in model.state_dict().items():
        if key.endswith("layer_scale"):
            assert np.all(value == np.float32(1e-6)), key


@pytest.mark.parametrize("name", NAMES)
def test_logits_from_torchvision_safetensors(name, reference):
    ref = reference(name)
    ref.model.eval()
    x, _ = images()
    with torch.no_grad():
        want = ref.net(torch.from_numpy(x)).numpy()
    got = ref.model.forward(x)
    assert got.shape == (2, 6)
    err = close(got, want, 1e-4)
    assert err is None, "logits: " + err


def test_gradients_match_torchvision(specs, reference):
    """One training step's gradients, full ConvNeXt-T, drop path at 0 on
    both sides (see the top of the file); the reference in float64."""
    name = "convnext_tiny"
    ref = reference(name)
    spec = re.sub(r"droppath [0-9.e-]+", "droppath 0", specs[name])
    assert "droppath 0," in spec or "droppath 0)" in spec
    model = ich.Model(spec)
    model.load_weights(ref.path, strict=True)
    x, g = images()
    model.train()
    model.zero_grad()
    out = model.forward(x)
    model.backward(g)
    grads = model.grads()
    net = copy.deepcopy(ref.net).double().train()
    for module in net.modules():
        if type(module).__name__ == "StochasticDepth":
            module.p = 0.0  # as torchvision's stochastic_depth_prob=0
    logits = net(torch.from_numpy(x).double())
    (logits * torch.from_numpy(g).double()).sum().backward()
    err = close(out, logits.detach().numpy(), 1e-4)
    assert err is None, "training logits: " + err
    want = {k: p.grad.numpy() for k, p in net.named_parameters()}
    assert sorted(grads) == sorted(want)
    failures = []
    for key in sorted(want):
        err = close(grads[key], want[key], 1e-3)
        if err:
            failures.append("%s: %s" % (key, err))
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_loads_into_torchvision(name, reference, tmp_path):
    ref = reference(name)
    saved = str(tmp_path / "libich.safetensors")
    ref.model.save(saved)
    back = copy.deepcopy(ref.net)
    for p in back.parameters():
        p.data.zero_()
    back.load_state_dict({k: torch.from_numpy(v) for k, v in read_safetensors(saved).items()},
                         strict=True)
    for k, v in back.state_dict().items():
        assert torch.equal(v, ref.net.state_dict()[k]), k
    if name != "convnext_tiny":
        return
    # a checkpoint after a training step (weights libich changed) too
    x, _ = images()
    model = ich.Model(ref.model.spec)
    model.load_weights(ref.path, strict=True)
    model.train()
    model.forward(x)
    model.backward(np.ones((2, 6), np.float32))
    grads = model.grads()
    state = model.state_dict()
    model.load_state_dict({k: v - 0.01 * grads[k] if k in grads else v
                           for k, v in state.items()})
    model.save(saved)
    back.load_state_dict({k: torch.from_numpy(v) for k, v in read_safetensors(saved).items()},
                         strict=True)
    model.eval()
    with torch.no_grad():
        want = back(torch.from_numpy(x)).numpy()
    err = close(model.forward(x), want, 1e-4)
    assert err is None, err
