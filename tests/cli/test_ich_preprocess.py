"""End-to-end tests of the ich-preprocess example program, on slices made by
ich-phantom (its own tests are in test_ich_phantom.py).

The PNGs are decoded with Pillow and compared with an independent numpy
computation from pydicom's reading of the same DICOM files.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

BUILD = Path(os.environ.get("ICH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
PHANTOM = BUILD / "examples" / "ich-phantom"
PREPROCESS = BUILD / "examples" / "ich-preprocess"

pytestmark = pytest.mark.skipif(not PREPROCESS.exists(), reason="examples not built")


def run(*args, check=True):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dicom")
    run(PHANTOM, folder, "--patients", 2, "--slices", 3, "--size", 96, "--seed", 3, "--quiet")
    files = sorted(folder.rglob("*.dcm"))  # folder/images/ID_*.dcm
    assert len(files) == 6
    return folder, files


def reference_rgb(path):
    """blood/brain/bone windows, uint8, at the original size, from pydicom."""
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float32) * np.float32(ds.RescaleSlope) + np.float32(
        ds.RescaleIntercept)
    channels = []
    for center, width in [(75, 215), (40, 80), (600, 2800)]:
        lo = np.float32(center) - np.float32(width) / np.float32(2)
        v = np.clip((hu - lo) / np.float32(width), 0, 1)
        channels.append((v * np.float32(255)).astype(np.uint8))
    return np.stack(channels, axis=-1)


def test_converts_every_slice_to_the_reference(slices, tmp_path):
    folder, files = slices
    out = tmp_path / "png"
    result = run(PREPROCESS, folder, out, "--size", 0, "--threads", 2)
    assert "6 converted" in result.stdout
    for f in files:
        png = out / f.relative_to(folder).with_suffix(".png")
        image = np.asarray(Image.open(png))
        assert image.shape == (96, 96, 3)
        np.testing.assert_array_equal(image, reference_rgb(f))


def test_resizes_and_uses_the_given_windows(slices, tmp_path):
    folder, files = slices
    out = tmp_path / "png"
    run(PREPROCESS, folder, out, "--size", 40, "--windows", "brain", "--resize", "area")
    png = out / files[0].relative_to(folder).with_suffix(".png")
    image = Image.open(png)
    assert image.mode == "L" and image.size == (40, 40)


def test_bad_file_is_reported_and_skipped(slices, tmp_path):
    folder, files = slices
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    broken = src / "broken.dcm"
    data = files[0].read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "png"
    result = run(PREPROCESS, src, out, "--threads", 2, check=False)
    assert result.returncode == 1
    assert "broken.dcm" in result.stderr and "truncated" in result.stderr
    assert "6 converted" in result.stdout and "1 failed" in result.stdout
    assert not (out / "broken.png").exists()
    assert not list(out.rglob("*.tmp-*")), "temporary files left behind"
    assert len(list(out.rglob("*.png"))) == 6


def test_existing_outputs_are_skipped_unless_forced(slices, tmp_path):
    folder, files = slices
    out = tmp_path / "png"
    run(PREPROCESS, folder, out)
    target = out / files[0].relative_to(folder).with_suffix(".png")
    target.write_bytes(b"sentinel")
    result = run(PREPROCESS, folder, out)
    assert "0 converted, 6 already there" in result.stdout
    assert target.read_bytes() == b"sentinel"
    run(PREPROCESS, folder, out, "--force")
    assert target.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("args", [["--size", "-1"], ["--threads", "x"], ["--windows", "nosuch"],
                                  ["--windows", "brain,bone"], ["--resize", "cubic"],
                                  ["--normalize", "0.38"], ["--recipe", "mode=linear"],
                                  ["--windows", "none"]])
def test_bad_options_fail_with_a_message(slices, tmp_path, args):
    folder, _ = slices
    result = run(PREPROCESS, folder, tmp_path / "png", *args, check=False)
    assert result.returncode == 2
    assert "ich-preprocess" in result.stderr or "usage" in result.stderr
    assert not (tmp_path / "png").exists()


def test_missing_input_folder_fails(tmp_path):
    result = run(PREPROCESS, tmp_path / "nope", tmp_path / "png", check=False)
    assert result.returncode == 1
    assert "nope" in result.stderr


def tutorial_png(path, size):
    """The tutorial's steps on the raw pixels, as it writes them: min-max
    with no window, uint8, PIL image, Resize(size) (PIL bilinear)."""
    img = pydicom.dcmread(path).pixel_array.astype(np.float32)
    img = (img - img.min()) / (img.max() - img.min() + 1e-5)
    pil = Image.fromarray((img * 255).astype(np.uint8))
    return np.asarray(pil.resize((size, size), Image.BILINEAR))


@pytest.mark.parametrize("options", [["--recipe", "tutorial", "--size", "64"],
                                     ["--minmax", "--quantize", "--resize", "antialias",
                                      "--size", "64", "--normalize", "0.38/0.236"]])
def test_tutorial_recipe(slices, tmp_path, options):
    """Raw min-max (no window), the uint8 step and Pillow's antialiased
    resize: the tutorial's image within one grey level (the tutorial
    min-maxes stored values, libich Hounsfield units), and the recipe's
    text beside the PNGs."""
    folder, files = slices
    out = tmp_path / "png"
    run(PREPROCESS, folder, out, *options, "--quiet")
    worst = 0
    for f in files:
        image = np.asarray(Image.open(out / f.relative_to(folder).with_suffix(".png")))
        assert image.shape == (64, 64)
        worst = max(worst, np.abs(image.astype(int) - tutorial_png(f, 64)).max())
    assert worst <= 1
    assert (out / "recipe.txt").read_text() == (
        "windows=none;mode=minmax;size=64x64;resize=antialias;quantize=1;mean=0.38;"
        "std=0.236;neighbors=0\n")


def test_minmax_without_windows_is_one_raw_channel(slices, tmp_path):
    folder, files = slices
    out = tmp_path / "png"
    run(PREPROCESS, folder, out, "--minmax", "--size", 0, "--quiet")
    ds = pydicom.dcmread(files[0])
    hu = ds.pixel_array.astype(np.float32) * np.float32(ds.RescaleSlope) + np.float32(
        ds.RescaleIntercept)
    want = ((hu - hu.min()) / (hu.max() - hu.min() + np.float32(1e-5)) * np.float32(255))
    image = np.asarray(Image.open(out / files[0].relative_to(folder).with_suffix(".png")))
    np.testing.assert_array_equal(image, want.astype(np.uint8))


def hostile_folder(folder, tmp_path):
    """The slices plus what made the walk loop or block: two links to ".",
    a link to a parent, a link to a sub-folder, a FIFO, a broken link and,
    where this user may make one, a character device."""
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    os.symlink(".", src / "self1")
    os.symlink(".", src / "self2")
    os.symlink("..", src / "images" / "up")
    os.symlink("images", src / "alias")
    os.mkfifo(src / "pipe.dcm")
    os.symlink("nowhere.dcm", src / "broken.dcm")
    skipped = ["pipe.dcm", "broken.dcm"]
    try:
        os.mknod(src / "null.dcm", 0o20644, os.makedev(1, 3))  # S_IFCHR
        skipped.append("null.dcm")
    except OSError:
        pass
    return src, skipped


def test_links_to_itself_and_fifos_do_not_loop_or_block(slices, tmp_path):
    """Each real slice converted once, under its real path; the FIFO, the
    device and the broken link named and skipped (exit 1); the walk ends."""
    folder, files = slices
    src, skipped = hostile_folder(folder, tmp_path)
    out = tmp_path / "png"
    result = subprocess.run([str(PREPROCESS), str(src), str(out), "--threads", "2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "6 converted" in result.stdout and "of 6 DICOM files" in result.stdout
    for name in skipped:
        assert f"skipped {src / name}" in result.stderr
    assert "FIFO" in result.stderr
    pngs = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert pngs == sorted(f.relative_to(folder).with_suffix(".png") for f in files)


def test_one_link_to_itself_converts_each_slice_once(slices, tmp_path):
    folder, files = slices
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    os.symlink(".", src / "again")
    out = tmp_path / "png"
    result = subprocess.run([str(PREPROCESS), str(src), str(out)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "6 converted" in result.stdout and "of 6 DICOM files" in result.stdout
    assert len(list(out.rglob("*.png"))) == 6


def thread_events(log):
    """(line number, tid created) of each clone and (line number, tid) of each
    thread exit in an `strace -f` log."""
    created, exited = [], []
    for n, line in enumerate(log.splitlines()):
        made = re.search(r"clone3?\(.*= (\d+)$", line) or re.search(
            r"<\.\.\. clone3? resumed>.*= (\d+)$", line)
        if made:
            created.append((n, int(made.group(1))))
        gone = re.match(r"(\d+)\s+\+\+\+ exited", line)
        if gone:
            exited.append((n, int(gone.group(1))))
    return created, exited


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_blas_pool_is_stopped_before_the_work(slices, tmp_path):
    """OpenBLAS's idle threads (started when libich loads, spinning for about
    0.1 s) are gone before the worker thread starts (issue 16)."""
    folder, _ = slices
    log = tmp_path / "strace.log"
    run("strace", "-f", "-o", log, "-e", "trace=clone,clone3", PREPROCESS, folder,
        tmp_path / "png", "--threads", 1, "--quiet")
    created, exited = thread_events(log.read_text())
    if len(created) < 2:
        pytest.skip("no BLAS thread pool here (one CPU, or a BLAS without one)")
    worker_line = created[-1][0]  # --threads 1: the last thread made is the worker
    pool = {tid for _, tid in created[:-1]}
    assert pool <= {tid for n, tid in exited if n < worker_line}
