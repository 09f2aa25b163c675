"""Tests of ich.image_path and ich.find_files (<ich/files.h>): the one rule
for image IDs as file names, and the folder walk without loops; and of
ich.predict_files, which walks folders with it."""

import os
import stat
import threading
import warnings

import pytest

import ich


@pytest.mark.parametrize("image_id, want", [
    ("ID_0a1b", "images/ID_0a1b.dcm"),
    ("P1/scan1/IM4", "images/P1/scan1/IM4.dcm"),
    ("a..b", "images/a..b.dcm"),
])
def test_image_path_accepts(image_id, want):
    assert ich.image_path("images", image_id, ".dcm") == want


def test_image_path_extension_and_folder():
    assert ich.image_path("images/", "a", None) == "images/a"
    assert ich.image_path(b"images", "a", ".png") == "images/a.png"
    with pytest.raises(ich.InvalidArgumentError):
        ich.image_path("images", "a", "/../x")


@pytest.mark.parametrize("image_id, why", [
    ("../outside/victim", '".."'),
    ("/etc/passwd", "absolute"),
    ("a/../../b", '".."'),
    ("./a", '"."'),
    ("a//b", "empty name"),
    ("", "empty"),
    ("a\nb", "control character"),
    ("a\0b", "NUL"),
    ("x" * 300, "longer than 255"),
    ("a/" * 600 + "b", "longer than 1024"),
])
def test_image_path_refuses(image_id, why):
    with pytest.raises(ich.FormatError) as info:
        ich.image_path("images", image_id)
    assert why in str(info.value)
    assert "images" in str(info.value)


def run_with_timeout(fn, seconds=20):
    """fn() on a thread; a walk that hangs fails the test instead."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the walk did not end"
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "scans"
    (root / "sub").mkdir(parents=True)
    (root / "a.dcm").write_bytes(b"a")
    (root / "sub" / "b.dcm").write_bytes(b"b")
    (root / ".hidden.dcm").write_bytes(b"h")
    os.symlink(".", root / "self1")
    os.symlink(".", root / "self2")
    os.symlink("..", root / "sub" / "up")
    os.symlink("sub", root / "alias")
    os.symlink("a.dcm", root / "link.dcm")
    os.symlink("nowhere", root / "broken.dcm")
    os.mkfifo(root / "pipe.dcm")
    return root


def test_find_files_visits_each_real_file_once(tree):
    paths, skipped = run_with_timeout(lambda: ich.find_files(tree))
    assert sorted(paths) == [str(tree / "a.dcm"), str(tree / "sub" / "b.dcm")]
    assert sorted(skipped) == [(str(tree / "broken.dcm"), "broken symbolic link"),
                               (str(tree / "pipe.dcm"), "a FIFO, not a regular file")]
    paths, _ = ich.find_files(tree, hidden=True)
    assert str(tree / ".hidden.dcm") in paths and len(paths) == 3


def test_find_files_device_node(tmp_path):
    try:
        os.mknod(tmp_path / "null.dcm", stat.S_IFCHR | 0o644, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("cannot make a device node here")
    (tmp_path / "good.dcm").write_bytes(b"g")
    paths, skipped = run_with_timeout(lambda: ich.find_files(tmp_path))
    assert paths == [str(tmp_path / "good.dcm")]
    assert skipped == [(str(tmp_path / "null.dcm"), "a character device, not a regular file")]


def test_find_files_errors(tmp_path):
    with pytest.raises(ich.IchIOError):
        ich.find_files(tmp_path / "nope")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ich.IchIOError):
        ich.find_files(tmp_path / "file")


def test_predict_files_walks_without_loops(tree):
    """predict_files finds a folder's DICOM files with the same walk (in
    libich, ich_predict_files): the links to "." and to a parent do not
    loop, the FIFO is not opened but named in a RuntimeWarning, and each
    file is read once (these "DICOM files" are not DICOM: the first one
    read raises, naming it)."""
    model = ich.Model("input 1x8x8, flatten, linear 6")
    model.set_input_window(ich.Window("brain", size=8))

    def files():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ich.IchError) as info:
                ich.predict_files(model, tree)
        return caught, info.value

    caught, error = run_with_timeout(files)
    assert str(tree / "a.dcm") in str(error)
    messages = [str(w.message) for w in caught]
    assert any("pipe.dcm" in m and "FIFO" in m for m in messages)
    # predict_folder skips and counts them: the two real files once each
    out = tree.parent / "p.csv"
    summary = run_with_timeout(lambda: ich.predict_folder(model, tree, out))
    assert summary == (2, 0, 2, 2)  # files, predicted, failed, skipped (FIFO, broken link)
    assert out.read_text().startswith("ID,any,")


# ---- The same rule in the calls that turn IDs into file names ----------------

HOSTILE = ["../outside/victim", "a/../../outside/victim"]


@pytest.fixture
def hostile(tmp_path):
    """images/ with one slice and one PNG, outside/ with a victim of each,
    and a table whose other rows' IDs climb out to it."""
    import numpy as np
    images, outside = tmp_path / "images", tmp_path / "outside"
    (images / "a").mkdir(parents=True)  # so that "a/../../outside/victim" would resolve
    outside.mkdir()
    pixels = np.zeros((8, 8), np.int16)
    ich.write_ct(images / "ok.dcm", pixels, patient_id="P_OK")
    ich.write_ct(outside / "victim.dcm", pixels, patient_id="VICTIM")
    rgb = np.zeros((8, 8, 3), np.uint8)
    ich.write_png(images / "ok.png", rgb)
    ich.write_png(outside / "victim.png", rgb)
    labels = ich.Labels()
    labels.add("ok", [1, 0, 0, 0, 0, 0], group="G0")
    for k, name in enumerate(HOSTILE + [str(outside / "victim")]):
        labels.add(name, [1, 1, 0, 0, 0, 0], group=f"G{k + 1}")
    return images, outside, labels


def test_groups_from_dicom_refuses_hostile_ids(hostile):
    images, _, labels = hostile
    assert ich.groups_from_dicom(labels, images) == 3
    assert labels.groups == ["P_OK", "G1", "G2", "G3"]


def test_dataset_leaves_hostile_ids_out(hostile):
    images, _, labels = hostile
    with ich.Dataset(labels, images, size=8, extension=".dcm", workers=0) as ds:
        assert len(ds) == 1
    only = ich.Labels()
    for name in HOSTILE:
        only.add(name, [0] * 6)
    with pytest.raises(ich.NotFoundError, match="2 IDs refused"):
        ich.Dataset(only, images, size=8, extension=".dcm", workers=0)


def test_augment_offline_writes_nothing_outside(hostile, tmp_path):
    images, outside, labels = hostile
    out = tmp_path / "aug"
    with ich.Augment("hflip:1") as aug:
        result = ich.augment_offline(aug, labels, images, out, target=12, seed=1)
    assert len(result) == 4  # no copy of a hostile row, none needed of "ok"
    assert sorted(p.name for p in outside.iterdir()) == ["victim.dcm", "victim.png"]
    assert all(out in p.parents for p in out.rglob("*"))
