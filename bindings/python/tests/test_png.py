"""ich.write_png and Window.to_png, checked by reading back with PIL."""

import os

import numpy as np
import pytest

import ich

Image = pytest.importorskip("PIL.Image")


def read_png(path):
    with Image.open(path) as im:
        im.load()
        return im.mode, np.asarray(im)


@pytest.mark.parametrize("shape,mode", [((17, 31), "L"), ((17, 31, 1), "L"),
                                        ((5, 3, 2), "LA"), ((23, 19, 3), "RGB"),
                                        ((8, 9, 4), "RGBA"), ((1, 1, 3), "RGB")])
def test_write_png_round_trip(tmp_path, rng, shape, mode):
    arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / "x.png"
    ich.write_png(path, arr)
    got_mode, got = read_png(path)
    assert got_mode == mode
    np.testing.assert_array_equal(got, arr.reshape(got.shape))
    assert got.shape[:2] == shape[:2]
    assert os.listdir(tmp_path) == ["x.png"]


def test_write_png_non_contiguous(tmp_path, rng):
    base = rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    view = base[::2, ::-3].transpose(1, 0, 2)
    ich.write_png(str(tmp_path / "v.png"), view)
    np.testing.assert_array_equal(read_png(tmp_path / "v.png")[1], view)


def test_write_png_errors(tmp_path):
    for channels in (0, 5, 8):
        with pytest.raises(ich.IchError) as info:
            ich.write_png(tmp_path / "bad.png", np.zeros((4, 4, channels), np.uint8))
        assert info.value.status == ich.ERR_INVALID_ARGUMENT
    with pytest.raises(ich.IchError):
        ich.write_png(tmp_path / "bad.png", np.zeros((0, 4), np.uint8))
    with pytest.raises(ich.IchError) as info:
        ich.write_png(tmp_path / "bad.png", np.zeros((70000, 1), np.uint8))
    assert info.value.status == ich.ERR_INVALID_ARGUMENT
    with pytest.raises(ich.IchError):
        ich.write_png(tmp_path / "bad.png", np.zeros((2, 2, 2, 2), np.uint8))
    with pytest.raises(TypeError):
        ich.write_png(tmp_path / "bad.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ich.IchError) as info:
        ich.write_png(tmp_path / "missing" / "dir.png", np.zeros((4, 4), np.uint8))
    assert info.value.status == ich.ERR_IO
    assert "dir.png" in info.value.message
    assert os.listdir(tmp_path) == []


def test_write_png_replaces_existing(tmp_path):
    path = tmp_path / "p.png"
    ich.write_png(path, np.zeros((3, 3), np.uint8))
    ich.write_png(path, np.full((2, 5), 7, np.uint8))
    assert read_png(path)[1].tolist() == [[7] * 5] * 2


@pytest.mark.parametrize("windows,size,resize", [
    ("blood,brain,bone", None, "bilinear"),
    ("brain", None, "bilinear"),
    ("blood,brain,bone", (64, 96), "bilinear"),
    ("subdural,40/80,bone", 50, "area"),
])
def test_to_png_equals_apply(test_files, tmp_path, windows, size, resize):
    dcm = os.path.join(test_files, "CT_small.dcm")
    png = tmp_path / "ct.png"
    with ich.Window(windows, size=size, resize=resize) as w:
        w.to_png(dcm, png)
        expected = w.apply(ich.read_dicom(dcm).hu)
    mode, got = read_png(png)
    assert mode == ("L" if expected.shape[2] == 1 else "RGB")
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)
    assert expected.std() > 0  # a real picture, not a constant


def test_to_png_errors(test_files, tmp_path):
    dcm = os.path.join(test_files, "CT_small.dcm")
    with pytest.raises(ich.IchError) as info:
        ich.Window("brain,bone").to_png(dcm, tmp_path / "two.png")
    assert info.value.status == ich.ERR_UNSUPPORTED
    with pytest.raises(ich.IchError) as info:
        ich.Window().to_png(tmp_path / "nope.dcm", tmp_path / "nope.png")
    assert info.value.status == ich.ERR_IO
    assert "nope.dcm" in info.value.message
    with pytest.raises(ich.IchError) as info:
        ich.Window().to_png(os.path.join(test_files, "rtdose.dcm"), tmp_path / "rt.png")
    assert info.value.status == ich.ERR_UNSUPPORTED
    assert os.listdir(tmp_path) == []
