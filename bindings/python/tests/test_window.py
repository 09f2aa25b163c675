"""ich.Window against numpy references written from include/ich/window.h."""

import threading

import numpy as np
import pytest

import ich

F = np.float32

PRESETS = {
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "blood": (75.0, 215.0),
    "bone": (600.0, 2800.0),
    "stroke": (40.0, 40.0),
    "soft_tissue": (40.0, 350.0),
    "soft": (40.0, 350.0),
}


# ---- numpy references (float32, in the header's order) -------------------

def ref_linear(hu, center, width):
    lo = F(center) - F(width) / F(2)
    return np.clip((hu - lo) / F(width), F(0), F(1))


def ref_minmax(hu, window=None):
    if window is None:
        x = hu
    else:
        center, width = window
        lo = F(center) - F(width) / F(2)
        x = np.clip(hu, lo, lo + F(width))
    mn, mx = x.min(), x.max()
    return (x - mn) / (mx - mn + F(1e-5))


def to_u8(v):
    return (v * F(255)).astype(np.uint8)


def ref_bilinear(img, out_rows, out_cols):
    """Half-pixel-centre bilinear (align_corners=False), source coordinates
    below 0 clamped to 0 as PyTorch does; float64."""
    def axis(n_in, n_out):
        scale = n_in / n_out
        src = (np.arange(n_out) + 0.5) * scale - 0.5
        src = np.maximum(src, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        frac = src - i0
        return i0, i1, frac

    r0, r1, fy = axis(img.shape[0], out_rows)
    c0, c1, fx = axis(img.shape[1], out_cols)
    a = img.astype(np.float64)
    top = a[r0][:, c0] * (1 - fx) + a[r0][:, c1] * fx
    bottom = a[r1][:, c0] * (1 - fx) + a[r1][:, c1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def area_weights(n_in, n_out):
    """Matrix W (n_out x n_in): output j is the mean of input interval
    [j * s, (j + 1) * s), s = n_in / n_out, fractional pixels weighted."""
    s = n_in / n_out
    w = np.zeros((n_out, n_in))
    for j in range(n_out):
        a, b = j * s, (j + 1) * s
        for k in range(int(np.floor(a)), min(int(np.ceil(b)), n_in)):
            w[j, k] = max(0.0, min(b, k + 1) - max(a, k))
        w[j] /= s
    return w


def ref_area(img, out_rows, out_cols):
    return area_weights(img.shape[0], out_rows) @ img.astype(np.float64) \
        @ area_weights(img.shape[1], out_cols).T


def random_hu(rng, shape):
    """float32 HU covering air to metal, far outside every window."""
    hu = rng.uniform(-3000, 5000, size=shape).astype(np.float32)
    hu.flat[::7] = rng.uniform(0, 120, size=hu.flat[::7].shape)  # inside brain windows
    hu.flat[:6] = [-1e6, 1e6, -1024, 3071, 0, 75]
    return hu


# ---- presets ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets(name):
    assert ich.window_preset(name) == PRESETS[name]
    assert ich.window_preset(name.upper()) == PRESETS[name]


def test_unknown_preset():
    with pytest.raises(ich.IchError) as info:
        ich.window_preset("nosuch")
    assert info.value.status == ich.ERR_NOT_FOUND
    assert isinstance(info.value, LookupError)
    with pytest.raises(ich.IchError) as info:
        ich.Window("blood,nosuch")
    assert info.value.status == ich.ERR_NOT_FOUND


def test_window_lists():
    assert ich.Window().windows == [PRESETS["blood"], PRESETS["brain"], PRESETS["bone"]]
    assert ich.Window("40/80,600/2800").windows == [(40.0, 80.0), (600.0, 2800.0)]
    assert ich.Window(" blood , 40/80 ").windows == [PRESETS["blood"], (40.0, 80.0)]
    assert ich.Window(["bone", (10, 20), "-5.5/7.25"]).windows == \
        [PRESETS["bone"], (10.0, 20.0), (-5.5, 7.25)]
    assert ich.Window((40, 80)).windows == [(40.0, 80.0)]
    assert ich.Window(None, mode="minmax").windows == []
    with ich.Window("brain", size=(32, 48), resize="area", mode="minmax") as w:
        assert (w.mode, w.size, w.resize) == ("minmax", (32, 48), "area")
        assert "Window" in repr(w)


@pytest.mark.parametrize("bad", ["40/0", "40/-10", "40/", "/80", "40/80,", ",brain",
                                 "40/abc", "brain,,bone", "40/nan", "inf/80"])
def test_bad_window_strings(bad):
    with pytest.raises(ich.IchError) as info:
        ich.Window(bad)
    assert info.value.status in (ich.ERR_INVALID_ARGUMENT, ich.ERR_NOT_FOUND)


@pytest.mark.parametrize("pair", [(40, 0), (40, -1), (float("nan"), 80), (40, float("inf"))])
def test_bad_window_pairs(pair):
    with pytest.raises(ich.IchError) as info:
        ich.Window([pair])
    assert info.value.status == ich.ERR_INVALID_ARGUMENT


def test_too_many_channels():
    ich.Window(["brain"] * 16)
    with pytest.raises(ich.IchError) as info:
        ich.Window(["brain"] * 17)
    assert info.value.status == ich.ERR_INVALID_ARGUMENT


@pytest.mark.parametrize("size", [(-1, 10), (10, -1), (0, 10), (10, 0), 16385, (1, 16385),
                                  -5, (2 ** 40, 3)])
def test_bad_sizes(size):
    with pytest.raises(ich.IchError) as info:
        ich.Window("brain", size=size)
    assert info.value.status == ich.ERR_INVALID_ARGUMENT


def test_bad_options():
    with pytest.raises(ich.IchError):
        ich.Window("brain", mode="log")
    with pytest.raises(ich.IchError):
        ich.Window("brain", resize="bicubic")
    with pytest.raises(ich.IchError):
        ich.Window("brain", std=0.0)
    with pytest.raises(ich.IchError):
        ich.Window("brain", std=-1.0)
    with pytest.raises(ich.IchError):
        ich.Window("brain", mean=[0.1, 0.2], std=[1, 2, 3])
    with pytest.raises(ich.IchError):
        ich.Window("brain", mean=[float("nan")])


def test_output_shape():
    w = ich.Window("blood,brain,bone")
    assert w.output_shape(512, 300) == (3, 512, 300)
    assert ich.Window("brain", size=224).output_shape(512, 300) == (1, 224, 224)
    assert ich.Window("brain,bone", size=(64, 96)).output_shape(5, 7) == (2, 64, 96)
    assert ich.Window(None, mode="minmax").output_shape(5, 7) == (1, 5, 7)
    with pytest.raises(ich.IchError):
        w.output_shape(0, 10)
    with pytest.raises(ich.IchError):
        ich.Window(None).output_shape(5, 7)  # linear needs windows


def test_bad_input_shapes(rng):
    w = ich.Window("brain")
    for bad in (np.zeros(10, np.float32), np.zeros((2, 3, 4), np.float32),
                np.float32(3), np.zeros((0, 4), np.float32)):
        with pytest.raises(ich.IchError) as info:
            w.apply(bad)
        assert isinstance(info.value, ValueError)
    with pytest.raises(TypeError):
        w.apply(np.zeros((4, 4)), dtype=np.int16)
    with pytest.raises(ich.IchError):  # 3 means for 1 channel
        ich.Window("brain", mean=[0.1, 0.2, 0.3], std=1.0).apply(
            np.zeros((4, 4)), dtype=np.float32)


def test_closed_window():
    w = ich.Window("brain")
    w.close()
    w.close()  # twice is fine
    with pytest.raises(ich.IchError):
        w.apply(np.zeros((4, 4), np.float32))
    with ich.Window("brain") as w2:
        pass
    with pytest.raises(ich.IchError):
        w2.windows
    assert "closed" in repr(w2)


# ---- values ------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (37, 53), (128, 96)])
def test_linear_u8_exact(rng, shape):
    hu = random_hu(rng, shape)
    names = ["blood", "brain", "bone", "subdural", "stroke", "soft"]
    w = ich.Window(",".join(names) + ",-100.5/3.25")
    out = w.apply(hu)
    assert out.dtype == np.uint8 and out.shape == shape + (7,)
    windows = [PRESETS[n] for n in names] + [(-100.5, 3.25)]
    for c, (center, width) in enumerate(windows):
        np.testing.assert_array_equal(out[:, :, c], to_u8(ref_linear(hu, center, width)),
                                      err_msg="window %d" % c)
    if hu.size >= 6:
        assert out.min() == 0 and out.max() == 255


def test_linear_accepts_any_float_input(rng):
    hu = random_hu(rng, (20, 30))
    w = ich.Window("brain")
    expected = w.apply(hu)
    np.testing.assert_array_equal(w.apply(hu.astype(np.float64)), expected)
    np.testing.assert_array_equal(w.apply(np.asfortranarray(hu)), expected)
    np.testing.assert_array_equal(w.apply(hu.astype(np.int32)),
                                  to_u8(ref_linear(hu.astype(np.int32).astype(F), 40, 80))[..., None])
    np.testing.assert_array_equal(w(hu), expected)


def test_infinities():
    hu = np.array([[-np.inf, np.inf, 40.0]], np.float32)
    out = ich.Window("brain").apply(hu)
    assert out[0, :, 0].tolist() == [0, 255, 127]
    ich.Window("brain").apply(np.array([[np.nan, 1.0]], np.float32))  # must not crash


@pytest.mark.parametrize("windows", [None, "brain", "blood,bone", "-50/10"])
def test_minmax_exact(rng, windows):
    hu = random_hu(rng, (41, 29))
    w = ich.Window(windows, mode="minmax")
    out_u8 = w.apply(hu)
    out_f = w.apply(hu, dtype=np.float32)
    refs = [ref_minmax(hu)] if windows is None else \
        [ref_minmax(hu, cw) for cw in ich.Window(windows).windows]
    assert out_u8.shape == (41, 29, len(refs)) and out_f.shape == (len(refs), 41, 29)
    for c, ref in enumerate(refs):
        np.testing.assert_array_equal(out_u8[:, :, c], to_u8(ref))
        np.testing.assert_array_equal(out_f[c], ref)


def test_minmax_constant_slice():
    """max == min: the 1e-5 guard gives zeros, not NaN."""
    out = ich.Window("brain", mode="minmax").apply(np.full((4, 5), 30.0, np.float32),
                                                   dtype=np.float32)
    assert np.array_equal(out, np.zeros((1, 4, 5), np.float32))


def test_float_output_and_normalisation(rng):
    """float32 CHW output, (v - mean) / std: bit-exact, as window.h promises
    for numpy code written in the same order (so tighter than 1e-6)."""
    hu = random_hu(rng, (33, 47))
    names = ["blood", "brain", "bone"]
    refs = [ref_linear(hu, *PRESETS[n]) for n in names]

    plain = ich.Window("blood,brain,bone").apply(hu, dtype=np.float32)
    assert plain.dtype == np.float32 and plain.shape == (3, 33, 47)
    for c in range(3):
        np.testing.assert_array_equal(plain[c], refs[c])

    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    norm = ich.Window("blood,brain,bone", mean=mean, std=std).apply(hu, dtype=np.float32)
    for c in range(3):
        np.testing.assert_array_equal(norm[c], (refs[c] - F(mean[c])) / F(std[c]))

    tutorial = ich.Window("blood,brain,bone", mean=0.380, std=0.236).apply(hu, np.float32)
    for c in range(3):
        np.testing.assert_array_equal(tutorial[c], (refs[c] - F(0.380)) / F(0.236))

    only_mean = ich.Window("brain", mean=0.5).apply(hu, np.float32)
    np.testing.assert_array_equal(only_mean[0], ref_linear(hu, 40, 80) - F(0.5))

    # normalisation does not touch the 8-bit output
    np.testing.assert_array_equal(
        ich.Window("blood,brain,bone", mean=mean, std=std).apply(hu),
        ich.Window("blood,brain,bone").apply(hu))


# ---- resize -------------------------------------------------------------------

RESIZE_CASES = [
    ((64, 64), (32, 32)),    # integer shrink
    ((60, 90), (20, 30)),    # integer shrink, non-square
    ((50, 70), (37, 23)),    # fractional shrink
    ((37, 23), (50, 70)),    # enlarge
    ((16, 40), (48, 20)),    # enlarge one axis, shrink the other
    ((7, 5), (7, 5)),        # same size
    ((1, 9), (4, 3)),        # single row
]


@pytest.mark.parametrize("in_shape,out_shape", RESIZE_CASES)
def test_bilinear_resize(rng, in_shape, out_shape):
    """Against a float64 reference: libich (like PyTorch) computes source
    coordinates in float32, which moves values by up to ~5e-6 on the 0..1
    scale for these sizes, so the tolerance is 1e-5."""
    hu = random_hu(rng, in_shape)
    w = ich.Window("brain,bone", size=out_shape, resize="bilinear")
    out = w.apply(hu, dtype=np.float32)
    assert out.shape == (2,) + out_shape
    for c, (center, width) in enumerate([PRESETS["brain"], PRESETS["bone"]]):
        ref = ref_bilinear(ref_linear(hu, center, width), *out_shape)
        np.testing.assert_allclose(out[c], ref, rtol=0, atol=1e-5)
    # 8-bit output is trunc(v * 255) of the same values: at most 1 apart
    u8 = w.apply(hu)
    assert u8.shape == out_shape + (2,)
    diff = np.abs(u8.astype(int) - np.moveaxis(out * 255, 0, -1).astype(np.uint8).astype(int))
    assert diff.max() <= 1


@pytest.mark.parametrize("in_shape,out_shape", RESIZE_CASES)
def test_bilinear_matches_torch(rng, in_shape, out_shape):
    torch = pytest.importorskip("torch")
    hu = random_hu(rng, in_shape)
    out = ich.Window("brain", size=out_shape).apply(hu, dtype=np.float32)
    v = torch.from_numpy(ref_linear(hu, 40, 80))[None, None]
    ref = torch.nn.functional.interpolate(v, size=out_shape, mode="bilinear",
                                          align_corners=False)[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("in_shape,out_shape", RESIZE_CASES)
def test_area_resize(rng, in_shape, out_shape):
    hu = random_hu(rng, in_shape)
    w = ich.Window("brain,bone", size=out_shape, resize="area")
    out = w.apply(hu, dtype=np.float32)
    assert out.shape == (2,) + out_shape
    for c, (center, width) in enumerate([PRESETS["brain"], PRESETS["bone"]]):
        ref = ref_area(ref_linear(hu, center, width), *out_shape)
        np.testing.assert_allclose(out[c], ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("in_shape,factor", [((64, 64), (2, 2)), ((60, 90), (3, 3)),
                                             ((48, 40), (4, 2))])
def test_area_integer_factor_is_block_mean(rng, in_shape, factor):
    hu = random_hu(rng, in_shape)
    out_shape = (in_shape[0] // factor[0], in_shape[1] // factor[1])
    out = ich.Window("blood", size=out_shape, resize="area").apply(hu, dtype=np.float32)
    v = ref_linear(hu, 75, 215).astype(np.float64)
    block = v.reshape(out_shape[0], factor[0], out_shape[1], factor[1]).mean(axis=(1, 3))
    np.testing.assert_allclose(out[0], block, rtol=0, atol=1e-5)


def test_resize_minmax_and_normalisation(rng):
    """Order of steps: map (minmax over the full slice), resize, normalise."""
    hu = random_hu(rng, (40, 30))
    out = ich.Window("brain", mode="minmax", size=(20, 15), resize="area",
                     mean=0.25, std=0.5).apply(hu, dtype=np.float32)
    ref = (ref_area(ref_minmax(hu, (40, 80)), 20, 15) - 0.25) / 0.5
    np.testing.assert_allclose(out[0], ref, rtol=0, atol=2e-5)


def test_apply_from_threads(rng):
    hu = random_hu(rng, (256, 256))
    w = ich.Window("blood,brain,bone", size=(224, 224))
    expected = w.apply(hu, dtype=np.float32)
    results, errors = [None] * 8, []

    def work(i):
        try:
            for _ in range(5):
                results[i] = w.apply(hu, dtype=np.float32)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_monochrome1_inverts_a_quantized_recipe_exactly():
    """MONOCHROME1 with the tutorial's uint8 step: the 8-bit image is the
    MONOCHROME2 one inverted, 255 - k, to the grey level (truncating
    1 - k/255 gave 254 - k for most pixels)."""
    hu = np.random.default_rng(0).uniform(-1000, 2000, (40, 40)).astype(np.float32)
    window = ich.Window.from_string("windows=none;mode=minmax;size=20x20;resize=antialias;"
                                    "quantize=1;mean=none;std=none;neighbors=0")
    plain = window.apply(hu, dtype=np.uint8).astype(int)
    inverted = window.apply(hu, dtype=np.uint8, monochrome1=True).astype(int)
    np.testing.assert_array_equal(inverted, 255 - plain)
