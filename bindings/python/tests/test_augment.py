"""Tests of ich.Augment, ich.augment_offline and ich.read_png, against numpy
references (flips, brightness/contrast) and Pillow (PNG decoding)."""

import numpy as np
import pytest
from PIL import Image

import ich


def _float_image(rng, shape=(3, 11, 14)):
    return rng.uniform(-50, 200, size=shape).astype(np.float32)


def test_flips_match_numpy(rng):
    img = _float_image(rng)
    np.testing.assert_array_equal(ich.Augment("hflip:1").apply(img, 1), img[:, :, ::-1])
    np.testing.assert_array_equal(ich.Augment("vflip:1").apply(img, 2), img[:, ::-1, :])
    both = ich.Augment().set_flip(1, 1)
    np.testing.assert_array_equal(both.apply(img, 3), img[:, ::-1, ::-1])
    hwc = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ich.Augment("hflip:1").apply(hwc, 4), hwc[:, ::-1, :])
    gray = hwc[:, :, 0]
    np.testing.assert_array_equal(ich.Augment("vflip:1").apply(gray, 5), gray[::-1, :])
    hw = img[0]
    np.testing.assert_array_equal(ich.Augment("hflip:1").apply(hw, 6), hw[:, ::-1])


def test_input_is_not_changed_and_strided_input_works(rng):
    img = _float_image(rng)
    before = img.copy()
    out = ich.Augment("hflip:1,blur:1:1:1").apply(img, 0)
    np.testing.assert_array_equal(img, before)
    assert out is not img and out.dtype == np.float32 and out.shape == img.shape
    view = img[:, ::2, :]  # not contiguous
    np.testing.assert_array_equal(ich.Augment("hflip:1").apply(view, 0), view[:, :, ::-1])


def test_brightness_contrast_matches_formula(rng):
    img = _float_image(rng)
    aug = ich.Augment().set_brightness_contrast(1, 0.2, 0.3)
    for seed in range(5):
        c = aug.choices(seed)
        assert c["brightness_contrast"] and 0.7 <= c["contrast"] <= 1.3
        mean = img.astype(np.float64).mean(axis=(1, 2), keepdims=True)
        want = (img - mean) * c["contrast"] + mean + c["brightness"] * (img.max() - img.min())
        np.testing.assert_allclose(aug.apply(img, seed), want, atol=1e-3)


def test_seeds_and_u8_agree_with_float(rng):
    spec = "hflip:0.5,rotate:1:20,elastic:0.5:20:4,brightness_contrast:1:0.1:0.2,blur:0.5:0.5:1"
    aug = ich.Augment(spec)
    hwc = rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8)
    chw = np.ascontiguousarray(hwc.transpose(2, 0, 1)).astype(np.float32)
    for seed in range(6):
        u = aug.apply(hwc, seed)
        f = aug.apply(chw, seed)
        want = np.round(np.clip(f, 0, 255)).transpose(1, 2, 0)
        assert np.abs(u.astype(np.int32) - want).max() <= 1
        np.testing.assert_array_equal(aug.apply(hwc, seed), u)
    assert not np.array_equal(aug.apply(chw, 1), aug.apply(chw, 2))


def test_text_form_and_errors():
    aug = ich.Augment(" rotate:0.5:15, hflip:0.5 ")
    assert str(aug) == "hflip:0.5,rotate:0.5:15"
    assert ich.Augment(str(aug)).describe() == aug.describe()
    assert "rotate" in repr(aug)
    aug.set_blur(0.2, 0.5, 1.5).set_elastic(0.1, 30, 5)
    assert str(aug) == "hflip:0.5,rotate:0.5:15,blur:0.2:0.5:1.5,elastic:0.1:30:5"
    with pytest.raises(ich.NotFoundError, match="twirl"):
        ich.Augment("twirl:0.5")
    with pytest.raises(ich.InvalidArgumentError):
        ich.Augment("hflip:2")
    with pytest.raises(ich.InvalidArgumentError):
        aug.set_rotation(0.5, 200)
    with pytest.raises(ich.InvalidArgumentError):
        aug.parse("blur:0.5:x:1")
    assert str(aug) == "hflip:0.5,rotate:0.5:15,blur:0.2:0.5:1.5,elastic:0.1:30:5"
    with pytest.raises(TypeError):
        aug.apply(np.zeros((4, 4), dtype=np.float64), 0)
    with pytest.raises(ich.ShapeError):
        aug.apply(np.zeros((2, 2, 2, 2), dtype=np.float32), 0)
    with pytest.raises(ich.InvalidArgumentError):
        aug.apply(np.zeros((4, 4), dtype=np.float32), -1)
    aug.close()
    with pytest.raises(ich.InvalidArgumentError, match="closed"):
        aug.describe()


@pytest.mark.parametrize("mode,shape", [("L", (13, 17)), ("LA", (13, 17, 2)),
                                        ("RGB", (13, 17, 3)), ("RGBA", (13, 17, 4))])
def test_read_png_matches_pillow(tmp_path, rng, mode, shape):
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / ("img_%s.png" % mode)
    Image.fromarray(pixels, mode).save(path)
    got = ich.read_png(path)
    np.testing.assert_array_equal(got, np.asarray(Image.open(path)))
    assert got.shape == shape
    ich.write_png(tmp_path / "again.png", got)
    np.testing.assert_array_equal(ich.read_png(tmp_path / "again.png"), pixels)


def test_read_png_palette_and_16_bit(tmp_path, rng):
    pal = Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).convert(
        "P", palette=Image.ADAPTIVE, colors=16)
    pal.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(ich.read_png(tmp_path / "pal.png"),
                                  np.asarray(pal.convert("RGB")))
    deep = rng.integers(0, 65536, size=(6, 5), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    got = ich.read_png(tmp_path / "deep.png")
    assert got.dtype == np.uint8 and got.shape == (6, 5)
    assert np.abs(got.astype(np.int32) - (deep >> 8)).max() <= 1


def test_read_png_errors(tmp_path):
    with pytest.raises(ich.IchIOError, match="nothing.png"):
        ich.read_png(tmp_path / "nothing.png")
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(ich.FormatError, match="text.png"):
        ich.read_png(tmp_path / "text.png")
    ich.write_png(tmp_path / "ok.png", np.zeros((5, 5, 3), np.uint8))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-5])
    with pytest.raises(ich.FormatError, match="cut.png"):
        ich.read_png(tmp_path / "cut.png")


def test_augment_offline(tmp_path, rng):
    images = tmp_path / "images"
    images.mkdir()
    train = ich.Labels()
    rows = {"a": [0, 0, 0, 0, 0, 0], "b": [0, 0, 0, 0, 0, 0], "c": [1, 1, 0, 0, 0, 0],
            "d": [1, 0, 1, 0, 0, 0], "e": [1, 0, 1, 0, 0, 1]}
    for name, values in rows.items():
        lib_values = np.asarray(values, np.float32)
        train.add(name, lib_values, group="P_" + name)
        ich.write_png(images / (name + ".png"), rng.integers(0, 256, (8, 6, 3), np.uint8))
    calls = []
    aug = ich.Augment("hflip:1")
    out = ich.augment_offline(aug, train, images, tmp_path / "out", target=3, seed=5,
                              threads=2, progress=lambda done, total: calls.append(total))
    assert isinstance(out, ich.Labels)
    ids = out.ids
    assert ids[:5] == list(rows)
    values = out.values
    counts = (values >= 0.5).sum(axis=0)
    assert counts[[0, 1, 2, 5]].min() >= 3
    assert counts[3] == counts[4] == 0  # no positive row to copy: logged, left as is
    for i, new_id in enumerate(ids[5:], start=5):
        source, k = new_id.rsplit("_aug_", 1)
        assert int(k) >= 1
        np.testing.assert_array_equal(values[i], rows[source])
        assert out.groups[i] == "P_" + source
        np.testing.assert_array_equal(ich.read_png(tmp_path / "out" / (new_id + ".png")),
                                      ich.read_png(images / (source + ".png"))[:, ::-1])
    assert calls
    again = ich.augment_offline(aug, train, images, tmp_path / "out2", target=3, seed=5)
    assert again.ids == ids
    with pytest.raises(ich.InvalidArgumentError):
        ich.augment_offline(aug, train, images, tmp_path / "out3", target=-1)
    with pytest.raises(TypeError):
        ich.augment_offline("hflip:1", train, images, tmp_path / "out3")


def test_apply_choices_replays_and_sets_choices():
    aug = ich.Augment("hflip:0.5,rotate:0.5:15,blur:0.3:0.5:1.0")
    x = np.random.default_rng(2).random((2, 16, 20)).astype(np.float32)
    for seed in range(6):  # the choices of a seed, replayed, give apply's result
        np.testing.assert_array_equal(aug.apply_choices(x, aug.choices(seed)), aug.apply(x, seed))
    # a fixed test-time flip, with no randomness
    np.testing.assert_array_equal(aug.apply_choices(x, {"hflip": True}), x[:, :, ::-1])
    u8 = (x[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(aug.apply_choices(u8, {"vflip": 1}), u8[::-1, :])
    with pytest.raises(ich.InvalidArgumentError):
        aug.apply_choices(x, {"wobble": 1})
