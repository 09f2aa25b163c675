"""The tutorial's preprocessing (issue 11): ich.Window against the tutorial's
own numpy + PIL (+ torchvision when installed) code, the recipe as text,
and checkpoints that carry their recipe and label names."""

import numpy as np
import pytest
from PIL import Image

import ich

F = np.float32
MEAN, STD = 0.380, 0.236


def tutorial_steps(pixels, size):
    """The tutorial's preprocessing, written as the tutorial writes it:
    min-max of the raw pixels, uint8, PIL image, Resize (PIL bilinear),
    ToTensor (/ 255), Normalize(0.380, 0.236). Returns the resized uint8
    image and the normalised float32 tensor."""
    img = pixels.astype(np.float32)
    img = (img - img.min()) / (img.max() - img.min() + 1e-5)
    img = (img * 255).astype(np.uint8)
    pil = Image.fromarray(img)
    rows, columns = size
    pil = pil.resize((columns, rows), Image.BILINEAR)  # torchvision's Resize on a PIL image
    u8 = np.asarray(pil)
    tensor = u8.astype(np.float32) / 255
    return u8, (tensor - np.float32(MEAN)) / np.float32(STD)


def slice_like(rng, rows, columns):
    """CT-like values: air, a skull ring, brain, a few bright spots, noise."""
    y, x = np.mgrid[0:rows, 0:columns]
    r = np.hypot((y - rows / 2) / (rows / 2), (x - columns / 2) / (columns / 2))
    hu = np.where(r < 0.8, 35.0, -1000.0) + np.where((r > 0.8) & (r < 0.9), 1800.0, 0.0)
    hu = hu + rng.normal(0, 25, (rows, columns))
    hu[rng.integers(0, rows, 20), rng.integers(0, columns, 20)] = 3000
    return hu.astype(np.float32)


def tutorial_window(size):
    return ich.Window(None, size=size, resize="antialias", mode="minmax", quantize=True,
                      mean=MEAN, std=STD)


SHAPES = [((768, 768), (512, 512)), ((512, 512), (128, 128)), ((101, 77), (50, 33)),
          ((37, 53), (512, 512)), ((64, 64), (200, 200)), ((513, 511), (256, 257)),
          ((512, 512), (512, 512)), ((7, 9), (3, 2))]


@pytest.mark.parametrize("shape,size", SHAPES)
def test_tutorial_recipe_matches_numpy_and_pil(shape, size):
    hu = slice_like(np.random.default_rng(sum(shape) + sum(size)), *shape)
    want_u8, want = tutorial_steps(hu, size)
    with tutorial_window(size) as w:
        got_u8 = w.apply(hu)[..., 0]
        got = w.apply(hu, dtype=np.float32)[0]
    # the issue asks for one grey level; Pillow's own arithmetic gives 0
    assert np.abs(got_u8.astype(int) - want_u8).max() == 0
    assert np.abs(got - want).max() <= 1e-6
    # within one grey level in the network's units, whatever the rounding
    assert np.abs(got - want).max() <= 1 / 255 / STD + 1e-6


def test_plain_bilinear_is_not_the_tutorial():
    """Shrinking 768 -> 512 without antialiasing is far from PIL: the test
    above would catch a resize that ignored the method."""
    hu = slice_like(np.random.default_rng(3), 768, 768)
    hu[::2] += 400  # fine detail that only antialiasing averages
    want_u8, _ = tutorial_steps(hu, (512, 512))
    with ich.Window(None, size=512, resize="bilinear", mode="minmax", quantize=True) as w:
        got = w.apply(hu)[..., 0]
    assert np.abs(got.astype(int) - want_u8).max() > 10


def test_float_antialias_matches_pil_float_image():
    """Without the uint8 step the antialiased resize works on floats, as PIL
    resizes a float ("F") image."""
    hu = slice_like(np.random.default_rng(5), 300, 200)
    with ich.Window("40/80", size=(120, 90), resize="antialias") as w:
        got = w.apply(hu, dtype=np.float32)[0]
    v = np.clip((hu - F(0)) / F(80), F(0), F(1)).astype(np.float32)
    want = np.asarray(Image.fromarray(v, mode="F").resize((90, 120), Image.BILINEAR))
    assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("shape,size", [((768, 768), 512), ((512, 512), 128), ((64, 64), 200)])
def test_tutorial_recipe_matches_torchvision(shape, size):
    transforms = pytest.importorskip("torchvision.transforms")
    hu = slice_like(np.random.default_rng(11), *shape)
    img = (hu - hu.min()) / (hu.max() - hu.min() + 1e-5)
    pil = Image.fromarray((img * 255).astype(np.uint8))
    pipeline = transforms.Compose([transforms.Resize(size), transforms.ToTensor(),
                                   transforms.Normalize([MEAN], [STD])])
    want = pipeline(pil).numpy()
    with tutorial_window(size) as w:
        got = w.apply(hu, dtype=np.float32)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1 / 255 / STD + 1e-6


def test_tutorial_recipe_text():
    with ich.Window.from_string(ich.TUTORIAL_RECIPE) as w:
        assert (w.mode, w.size, w.resize, w.quantize) == ("minmax", (512, 512), "antialias", True)
        assert w.windows == [] and w.neighbors == 0
        assert w.mean == [pytest.approx(MEAN)] and w.std == [pytest.approx(STD)]
        hu = slice_like(np.random.default_rng(2), 600, 600)
        _, want = tutorial_steps(hu, (512, 512))
        assert np.abs(w.apply(hu, dtype=np.float32)[0] - want).max() <= 1e-6


def test_string_round_trip():
    w = ich.Window("blood,brain,-12.5/0.125", size=(64, 48), resize="area", mode="minmax",
                   mean=[0.1, 0.2, 0.3], std=[1, 2, 3], quantize=True, neighbors=2)
    text = str(w)
    assert text == ("windows=75/215,40/80,-12.5/0.125;mode=minmax;size=64x48;resize=area;"
                    "quantize=1;mean=0.1,0.2,0.3;std=1,2,3;neighbors=2")
    back = ich.Window.from_string(text)
    assert str(back) == text
    assert back.windows == w.windows and back.size == (64, 48) and back.neighbors == 2
    assert repr(back) == "ich.Window.from_string(%r)" % text


@pytest.mark.parametrize("text", [
    "", "windows=40/80", "windows=40/80;mode=linear", "garbage",
    ich.TUTORIAL_RECIPE.replace("minmax", "maxmin"),
    ich.TUTORIAL_RECIPE.replace("512x512", "512x0"),
    ich.TUTORIAL_RECIPE.replace("std=0.236", "std=-1"),
    ich.TUTORIAL_RECIPE + ";mode=linear",
    ich.TUTORIAL_RECIPE.replace("neighbors=0", "neighbors=99"),
    ich.TUTORIAL_RECIPE + "\0;mode=linear",
    "x" * 5000,
])
def test_bad_recipe_text(text):
    with pytest.raises(ich.FormatError, match="recipe"):
        ich.Window.from_string(text)


# ---- checkpoints carry the recipe and the labels -------------------------

SPEC = "input 1x16x16, conv 4 3, relu, maxpool 2, flatten, linear 6"


def test_model_without_recipe_is_refused(tmp_path):
    m = ich.Model(SPEC)
    m.save(tmp_path / "m.safetensors")
    loaded = ich.Model.load(tmp_path / "m.safetensors")
    with pytest.raises(ich.NotFoundError, match="no input recipe"):
        loaded.input_window()


def test_step_api_stores_recipe_and_labels(tmp_path):
    m = ich.Model(SPEC)
    m.init_weights(0)
    recipe = ich.TUTORIAL_RECIPE.replace("512x512", "16x16")
    m.set_input_window(recipe)
    names = ["any", "intraparenchymal", "intraventricular", "subdural", "subarachnoid",
             "epidural"]
    m.labels = names
    m.save(tmp_path / "m.safetensors")
    loaded = ich.Model.load(tmp_path / "m.safetensors")
    assert loaded.labels == names
    assert loaded.metadata["ich.recipe"] == recipe
    with loaded.input_window() as w:
        assert str(w) == recipe
    with pytest.raises(ich.ShapeError):
        m.set_input_window(ich.TUTORIAL_RECIPE)  # 512 x 512 for a 16 x 16 model
    with pytest.raises(ich.ShapeError):
        m.set_input_window(ich.Window("blood,brain,bone", size=16))  # 3 channels for 1
    with pytest.raises(ich.ShapeError):
        m.labels = ["any"]
    with pytest.raises(ich.IchError):
        m.labels = ["a,b", "c", "d", "e", "f", "g"]


def test_older_checkpoint_keys_still_read():
    m = ich.Model(SPEC)
    m.metadata["ich.windows"] = "brain"
    m.metadata["ich.size"] = "16"
    m.metadata["ich.mean"] = "0.5"
    m.metadata["ich.std"] = "0.25"
    with m.input_window() as w:
        assert w.windows == [(40.0, 80.0)] and w.size == (16, 16) and w.mean == [0.5]


def test_neighbors_count_as_channels():
    m = ich.Model("input 3x16x16, flatten, linear 6")
    with pytest.raises(ich.ShapeError):
        m.set_input_window(ich.Window("brain", size=16))
    m.set_input_window(ich.Window("brain", size=16, neighbors=1))  # 1 channel x 3 slices
    with m.input_window() as w:
        assert w.neighbors == 1


def test_mutated_recipe_text_never_crashes():
    """Seeded random edits of a full recipe: each either parses, and then
    its canonical text reads back to itself, or raises FormatError."""
    base = ("windows=75/215,40/80,-12.5/0.125;mode=minmax;size=64x48;resize=area;"
            "quantize=1;mean=0.1,0.2,0.3;std=1,2,3;neighbors=2")
    alphabet = list("0123456789.,;=/x-+eE nNaiIf") + ["windows=", "mean=", ";std=", "none"]
    rng = np.random.default_rng(0)
    parsed = 0
    for _ in range(3000):
        text = list(base)
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(0, len(text) + 1))
            op = rng.integers(0, 3)
            if op == 0 and text:
                del text[min(i, len(text) - 1)]
            elif op == 1:
                text.insert(i, alphabet[rng.integers(0, len(alphabet))])
            elif text:
                text[min(i, len(text) - 1)] = alphabet[rng.integers(0, len(alphabet))]
        text = "".join(text)
        try:
            w = ich.Window.from_string(text)
        except ich.FormatError:
            continue
        parsed += 1
        canonical = str(w)
        assert str(ich.Window.from_string(canonical)) == canonical
        w.close()
    assert 0 < parsed < 3000


def test_python_train_checkpoint_carries_recipe_and_labels(tmp_path):
    """ich.train() (the C driver) records the training dataset's recipe
    and label names; the checkpoint then gives predict_files the tutorial's
    input, as computed by numpy and PIL."""
    ich.write_phantom(tmp_path / "data", patients=2, slices=4, size=40, seed=3)
    recipe = ich.TUTORIAL_RECIPE.replace("512x512", "24x24")
    with ich.Window.from_string(recipe) as w, \
            ich.Dataset(str(tmp_path / "data" / "labels.csv"), str(tmp_path / "data" / "images"),
                        window=w, batch_size=4, workers=0) as ds:
        with ds.input_window() as recorded:
            assert str(recorded) == recipe
        m = ich.Model("input 1x24x24, conv 4 3, relu, maxpool 2, flatten, linear 6")
        m.init_weights(0)
        opt = ich.Optimizer(m, "adam", lr=1e-3)
        ich.train(m, opt, ds, epochs=1, checkpoint_dir=tmp_path / "run")
    saved = ich.Model.load(tmp_path / "run" / "last.safetensors")
    assert saved.metadata["ich.recipe"] == recipe
    assert saved.labels == ["any", "epidural", "intraparenchymal", "intraventricular",
                            "subarachnoid", "subdural"]
    files = sorted((tmp_path / "data" / "images").glob("*.dcm"))[:3]
    _, probs = ich.predict_files(saved, files)
    want = saved.predict(np.stack([tutorial_steps(ich.read_dicom(f).hu, (24, 24))[1][None]
                                   for f in files]))
    np.testing.assert_allclose(probs, want, atol=1e-6)
