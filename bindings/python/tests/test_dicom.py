"""ich.read_dicom against pydicom, malformed input, and ich.write_ct round trips."""

import math
import glob
import os
import warnings

import numpy as np
import pytest

import ich

pydicom = pytest.importorskip("pydicom")
from pydicom.pixel_data_handlers.util import apply_modality_lut  # noqa: E402

LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
}

# Lossy decoders (GDCM's OpenJPEG in libich, Pillow's OpenJPEG in pydicom)
# may round the irreversible wavelet differently: allow this many units of
# the stored value, which is also well under 1% of the pixel range of the
# lossy files compared (thousands of units). Measured: 0 difference.
LOSSY_TOLERANCE = 2

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"


def _all_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)


def _read_pydicom(path):
    """(dataset, native-endian pixel_array) or None when the file is not a
    single-frame grayscale image pydicom decodes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            return None
        if "PixelData" not in ds:
            return None
        try:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            samples = int(ds.get("SamplesPerPixel", 1))
        except (TypeError, ValueError):
            return None
        if frames != 1 or samples != 1:
            return None
        try:
            arr = ds.pixel_array
        except Exception:
            return None
    if arr.ndim != 2:
        return None
    return ds, arr.astype(arr.dtype.newbyteorder("="))


def _expected_hu(ds, stored):
    """hu as include/ich/dicom.h defines it, computed in numpy float32: the
    modality rescale of the stored values, MONOCHROME1 too."""
    s = stored.astype(np.int64)
    slope = float(ds.RescaleSlope) if "RescaleSlope" in ds else 1.0
    intercept = float(ds.RescaleIntercept) if "RescaleIntercept" in ds else 0.0
    return s.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _first(value):
    if isinstance(value, pydicom.multival.MultiValue):
        return value[0]
    return value


def _num(ds, keyword, default=math.nan):
    if keyword in ds and ds[keyword].value not in (None, ""):
        return float(_first(ds[keyword].value))
    return default


def _same_float(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-9)


def _check_metadata(img, ds, path):
    where = os.path.basename(path)
    assert (img.rows, img.columns) == (int(ds.Rows), int(ds.Columns)), where
    assert img.bits_allocated == int(ds.BitsAllocated), where
    assert img.bits_stored == int(ds.BitsStored), where
    assert img.pixel_representation == int(ds.PixelRepresentation), where
    assert img.photometric == str(ds.PhotometricInterpretation).strip(), where
    assert img.monochrome1 == (img.photometric == "MONOCHROME1"), where
    assert img.transfer_syntax == str(ds.file_meta.TransferSyntaxUID), where
    assert img.modality == str(ds.get("Modality", "")), where
    assert img.patient_id == str(ds.get("PatientID", "")), where
    assert img.sop_instance_uid == str(ds.get("SOPInstanceUID", "")), where
    assert img.series_instance_uid == str(ds.get("SeriesInstanceUID", "")), where
    assert img.study_instance_uid == str(ds.get("StudyInstanceUID", "")), where
    assert img.instance_number == int(_num(ds, "InstanceNumber", 0)), where
    assert _same_float(img.rescale_slope, _num(ds, "RescaleSlope", 1.0)), where
    assert _same_float(img.rescale_intercept, _num(ds, "RescaleIntercept", 0.0)), where
    assert _same_float(img.slice_thickness, _num(ds, "SliceThickness")), where
    assert _same_float(img.window_center, _num(ds, "WindowCenter")), where
    assert _same_float(img.window_width, _num(ds, "WindowWidth")), where
    if "PixelSpacing" in ds and len(ds.PixelSpacing) == 2:
        assert img.pixel_spacing == tuple(float(v) for v in ds.PixelSpacing), where
    else:
        assert all(math.isnan(v) for v in img.pixel_spacing), where
    if "ImagePositionPatient" in ds and len(ds.ImagePositionPatient) == 3:
        assert img.image_position == tuple(float(v) for v in ds.ImagePositionPatient), where
    else:
        assert all(math.isnan(v) for v in img.image_position), where


def test_conformance_with_pydicom(test_files):
    """Every single-frame grayscale image pydicom decodes: same pixels (and
    dtype), hu as documented, same metadata."""
    compared, lossy = [], []
    for path in _all_files(test_files):
        read = _read_pydicom(path)
        if read is None:
            continue
        ds, expected = read
        name = os.path.relpath(path, test_files)
        img = ich.read_dicom(path)
        assert img.pixels.shape == expected.shape, name
        assert img.pixels.dtype.kind == expected.dtype.kind, name
        assert img.pixels.dtype.itemsize == expected.dtype.itemsize, name
        assert img.pixels.flags.owndata and img.hu.flags.owndata, name
        syntax = str(ds.file_meta.TransferSyntaxUID)
        if syntax in LOSSY_SYNTAXES:
            diff = np.abs(img.pixels.astype(np.int64) - expected.astype(np.int64))
            assert diff.max() <= LOSSY_TOLERANCE, (name, int(diff.max()))
            lossy.append((name, int(diff.max())))
        else:
            np.testing.assert_array_equal(img.pixels, expected, err_msg=name)
        # hu from libich's own stored values, exactly as numpy float32 does it
        assert img.hu.dtype == np.float32
        np.testing.assert_array_equal(img.hu, _expected_hu(ds, img.pixels), err_msg=name)
        if syntax not in LOSSY_SYNTAXES and "RescaleSlope" in ds:
            # pydicom's own modality LUT (float64), MONOCHROME1 included
            np.testing.assert_allclose(img.hu, apply_modality_lut(expected, ds), rtol=1e-6,
                                       atol=1e-3, err_msg=name)
        _check_metadata(img, ds, path)
        compared.append(name)
    print("\ncompared %d files with pydicom: %s" % (len(compared), ", ".join(compared)))
    print("lossy (name, max abs diff): %s" % lossy)
    assert len(compared) >= 12, compared
    # the interesting cases must be among them
    for must in ("CT_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
                 "MR_small_jp2klossless.dcm", "image_dfl.dcm", "liver_1frame.dcm",
                 "rtdose_1frame.dcm", "JPEG2000.dcm"):
        assert must in compared, must
    assert any("CR1" in name for name in compared)  # MONOCHROME1


MONOCHROME1_FILES = [os.path.join("dicomdirtests", "77654033", cr, name)
                     for cr, name in (("CR1", "6154"), ("CR2", "6247"), ("CR3", "6278"))]


def _window_reference(hu, center, width, invert):
    """The linear window in numpy float32 as window.h defines it, then the
    MONOCHROME1 display inversion v -> 1 - v."""
    lo = np.float32(center) - np.float32(width) / np.float32(2)
    v = np.clip((hu.astype(np.float32) - lo) / np.float32(width), 0, 1).astype(np.float32)
    return (np.float32(1) - v) if invert else v


@pytest.mark.parametrize("name", MONOCHROME1_FILES)
def test_monochrome1_hu_is_the_modality_lut(test_files, name):
    """MONOCHROME1: hu is the modality rescale of the stored values, as
    pydicom's apply_modality_lut gives it (not the stored values mirrored
    first); windowing inverts in the display range, after the window."""
    path = os.path.join(test_files, name)
    ds = pydicom.dcmread(path)
    img = ich.read_dicom(path)
    assert img.monochrome1 and img.photometric == "MONOCHROME1"
    assert img.bits_stored == 12 and img.pixel_representation == 0
    reference = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_allclose(img.hu, reference, rtol=1e-6, atol=1e-3)
    assert img.hu.min() > 1000  # mirrored, the minimum would be near -700 here
    center, width = float(reference.mean()), float(np.ptp(reference))
    with ich.Window([(center, width)]) as win:
        shown = win.apply(img, dtype=np.float32)[0]
        np.testing.assert_allclose(shown, _window_reference(reference, center, width, True),
                                   atol=1e-6)
        # the bare HU are never inverted; the flag inverts them as a slice does
        plain = win.apply(img.hu, dtype=np.float32)[0]
        np.testing.assert_allclose(plain, _window_reference(reference, center, width, False),
                                   atol=1e-6)
        np.testing.assert_array_equal(win.apply(img.hu, dtype=np.float32, monochrome1=True)[0],
                                      shown)
        u8 = win.apply(img)[:, :, 0].astype(int)
        expected_u8 = np.trunc(_window_reference(reference, center, width, True)
                               * np.float32(255)).astype(int)
        assert np.abs(u8 - expected_u8).max() <= 1
    with ich.Window([(center, width)], mean=[0.25], std=[0.5]) as win:
        np.testing.assert_allclose(win.apply(img, dtype=np.float32)[0],
                                   (_window_reference(reference, center, width, True) - 0.25)
                                   / 0.5, atol=1e-5)


def test_ct_converted_to_monochrome1(test_files, tmp_path):
    """CT_small.dcm made MONOCHROME1 with pydicom the way such files are
    made (stored values mirrored, so it displays as the original): hu is
    pydicom's modality LUT of the new stored values, and the windowed image
    is the display the standard defines: in min-max mode the original's
    image, with a fixed window 1 - v of the window on the new hu."""
    original = os.path.join(test_files, "CT_small.dcm")
    ds = pydicom.dcmread(original)
    assert ds.PixelRepresentation == 1 and ds.BitsStored == 16
    ds.PixelData = (np.int16(-1) - ds.pixel_array.astype(np.int16)).astype("<i2").tobytes()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    converted = pydicom.dcmread(tmp_path / "m1.dcm")
    img, ref = ich.read_dicom(tmp_path / "m1.dcm"), ich.read_dicom(original)
    assert img.monochrome1 and not ref.monochrome1
    hu = apply_modality_lut(converted.pixel_array, converted)
    np.testing.assert_allclose(img.hu, hu, rtol=0, atol=1e-3)
    with ich.Window(None, mode="minmax", size=64, mean=[0.4], std=[0.2]) as win:
        np.testing.assert_allclose(win.apply(img, dtype=np.float32),
                                   win.apply(ref, dtype=np.float32), atol=1e-4)
        assert np.abs(win.apply(img).astype(int) - win.apply(ref).astype(int)).max() <= 1
    with ich.Window("brain") as win:
        c, w = ich.window_preset("brain")
        np.testing.assert_allclose(win.apply(img, dtype=np.float32)[0],
                                   _window_reference(hu, c, w, True), atol=1e-6)


@pytest.mark.parametrize("variant", [
    "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm",
    "MR_small_padded.dcm",
])
def test_lossless_variants_equal_mr_small(test_files, variant):
    """Lossless encodings of MR_small decode to MR_small's pixel_array
    (JPEG-LS included, which pydicom cannot decode here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(os.path.join(test_files, "MR_small.dcm"))
        reference = ds.pixel_array
    img = ich.read_dicom(os.path.join(test_files, variant))
    assert img.pixels.dtype == np.int16
    np.testing.assert_array_equal(img.pixels, reference)
    np.testing.assert_array_equal(img.hu, _expected_hu(ds, reference))
    assert img.sop_instance_uid == str(ds.SOPInstanceUID)
    assert img.patient_id == str(ds.PatientID)
    assert img.modality == "MR"


def test_ct_small_metadata(test_files):
    """Spot values of CT_small.dcm, written out."""
    img = ich.read_dicom(os.path.join(test_files, "CT_small.dcm"))
    assert (img.rows, img.columns) == (128, 128)
    assert img.pixels.dtype == np.int16 and img.hu.dtype == np.float32
    assert img.modality == "CT"
    assert img.photometric == "MONOCHROME2" and not img.monochrome1
    assert img.transfer_syntax == EXPLICIT_VR_LE
    assert img.rescale_slope == 1.0 and img.rescale_intercept == -1024.0
    assert img.pixel_spacing == (0.661468, 0.661468)
    assert img.image_position == (-158.135803, -179.035797, -75.699997)
    assert img.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert img.patient_id == "1CT1"
    assert img.shape == (128, 128)
    assert img.metadata["rows"] == 128
    assert "DicomImage" in repr(img)


def test_read_dicom_bytes_equals_reading_the_file(test_files):
    """The same bytes decode the same from memory as from a file, whether
    given as bytes, bytearray or memoryview; errors use the given name."""
    path = os.path.join(test_files, "CT_small.dcm")
    data = open(path, "rb").read()
    from_file = ich.read_dicom(path)
    for form in (data, bytearray(data), memoryview(data)):
        img = ich.read_dicom_bytes(form, name="ct")
        np.testing.assert_array_equal(img.pixels, from_file.pixels)
        np.testing.assert_array_equal(img.hu, from_file.hu)
        assert img.sop_instance_uid == from_file.sop_instance_uid
        assert img.pixel_spacing == from_file.pixel_spacing
    with pytest.raises(ich.FormatError, match="cut.dcm"):
        ich.read_dicom_bytes(data[:len(data) // 2], name="cut.dcm")
    with pytest.raises(ich.FormatError, match="<memory>"):
        ich.read_dicom_bytes(b"")
    with pytest.raises(ich.UnsupportedError):
        ich.read_dicom_bytes(open(os.path.join(test_files, "rtdose.dcm"), "rb").read())


def test_pathlike_and_bytes_paths(test_files):
    import pathlib

    path = os.path.join(test_files, "CT_small.dcm")
    a = ich.read_dicom(pathlib.Path(path))
    b = ich.read_dicom(os.fsencode(path))
    np.testing.assert_array_equal(a.pixels, b.pixels)


def test_arrays_outlive_nothing(test_files):
    """The arrays are independent copies: writing to them is fine and does
    not affect another read."""
    path = os.path.join(test_files, "CT_small.dcm")
    a = ich.read_dicom(path)
    keep = a.pixels.copy()
    a.pixels[:] = 0
    a.hu[:] = 0
    b = ich.read_dicom(path)
    np.testing.assert_array_equal(b.pixels, keep)


# ---- malformed and unsupported input -------------------------------------

def _assert_error(path, status=None):
    with pytest.raises(ich.IchError) as info:
        ich.read_dicom(path)
    err = info.value
    assert err.status != 0
    assert err.status_name == ich.status_string(err.status)
    assert err.status_name.startswith("ICH_ERR_")
    assert os.path.basename(os.fspath(path)) in err.message, err.message
    if status is not None:
        assert err.status == status, str(err)
    return err


@pytest.mark.parametrize("name", ["MR_truncated.dcm"])
def test_truncated_pixel_data(test_files, name):
    err = _assert_error(os.path.join(test_files, name), ich.ERR_FORMAT)
    assert isinstance(err, ich.FormatError) and isinstance(err, ValueError)


@pytest.mark.parametrize("name", ["no_meta.dcm", "rtplan.dcm", "rtstruct.dcm",
                                  "ExplVR_LitEndNoMeta.dcm", "test-SR.dcm",
                                  "waveform_ecg.dcm", "dicomdirtests/DICOMDIR"])
def test_no_pixel_data(test_files, name):
    """Files without an image are errors, with the file name in the message."""
    _assert_error(os.path.join(test_files, name))


def test_bad_vr_decodes_like_pydicom(test_files):
    """badVR.dcm has NumberOfFrames "1A" (not a number) on a 10 x 10 32-bit
    RT dose: libich reads it as one frame (or refuses it); when it decodes,
    the pixels are pydicom's once NumberOfFrames is repaired."""
    path = os.path.join(test_files, "badVR.dcm")
    try:
        img = ich.read_dicom(path)
    except ich.IchError as err:
        assert "badVR.dcm" in err.message
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        ds.NumberOfFrames = 1
        expected = ds.pixel_array
    assert img.pixels.dtype == np.uint32 and img.pixels.shape == (10, 10)
    np.testing.assert_array_equal(img.pixels, expected)


def test_jpeg_extended_12_bit(test_files):
    """JPEG extended (12-bit, lossy), which pydicom cannot decode here:
    JPEG-lossy.dcm and JPGExtended.dcm hold the same image; the values fit
    in BitsStored and are not constant."""
    a = ich.read_dicom(os.path.join(test_files, "JPEG-lossy.dcm"))
    b = ich.read_dicom(os.path.join(test_files, "JPGExtended.dcm"))
    assert a.transfer_syntax == "1.2.840.10008.1.2.4.51"
    assert a.pixels.dtype == np.uint16 and a.bits_stored == 12
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert 0 <= a.pixels.min() < a.pixels.max() < 4096


def _frames_and_samples(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            samples = int(ds.get("SamplesPerPixel", 1))
        except Exception:
            return None
    if "Rows" not in ds:
        return None
    return frames, samples


def test_multiframe_and_colour_unsupported(test_files):
    """Every multi-frame or colour image among the test files gives
    ICH_ERR_UNSUPPORTED, whatever its transfer syntax. SC_rgb_jpeg.dcm is
    malformed before it is colour (its data set is implicit VR under an
    explicit VR syntax, which GDCM would read into a 1.3 GB allocation):
    test_mislabelled_data_set_is_refused_before_gdcm_allocates has it."""
    seen = []
    for path in _all_files(test_files):
        fs = _frames_and_samples(path)
        if fs is None or fs == (1, 1) or os.path.basename(path) == "SC_rgb_jpeg.dcm":
            continue
        err = _assert_error(path, ich.ERR_UNSUPPORTED)
        assert isinstance(err, ich.UnsupportedError)
        seen.append(os.path.basename(path))
    print("\nunsupported as expected: %s" % seen)
    for must in ("rtdose.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_rle.dcm",
                 "ExplVR_BigEnd.dcm", "SC_rgb_small_odd.dcm", "SC_rgb_jpeg_dcmd.dcm"):
        assert must in seen, must


def test_random_bytes_and_empty_file(tmp_path, rng):
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    _assert_error(empty)
    noise = tmp_path / "noise.dcm"
    noise.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _assert_error(noise)
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"\0" * 128 + b"DICM" + rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    _assert_error(fake)
    text = tmp_path / "text.dcm"
    text.write_text("this is not a DICOM file\n" * 20)
    _assert_error(text)


def test_missing_file_is_io_error(tmp_path):
    err = _assert_error(tmp_path / "does-not-exist.dcm", ich.ERR_IO)
    assert isinstance(err, ich.IchIOError) and isinstance(err, OSError)
    assert err.status_name == "ICH_ERR_IO"


def test_directory_is_an_error(tmp_path):
    with pytest.raises(ich.IchError):
        ich.read_dicom(tmp_path)


_CHILD = """
import hashlib, os, sys
sys.path.insert(0, sys.argv[1])
import ich
for path in sys.argv[2:]:
    print("READ", path, flush=True)
    try:
        img = ich.read_dicom(path)
    except ich.IchError as err:
        named = os.path.basename(path) in err.message
        print("ERROR", err.status, int(named), flush=True)
    else:
        assert img.pixels.shape == img.hu.shape == (img.rows, img.columns)
        print("OK", hashlib.sha256(img.pixels.tobytes()).hexdigest(), flush=True)
"""


def read_in_child(paths):
    """Read `paths` with ich.read_dicom in child processes, so that a crash
    (a GDCM assertion, a segfault) is a test failure that names the file
    instead of the end of the test run. Returns ({path: result}, {path:
    crash report}); a result is ("OK", sha256 of pixels) or ("ERROR",
    status, message-names-the-file)."""
    import subprocess
    import sys

    package = os.path.dirname(os.path.dirname(os.path.abspath(ich.__file__)))
    results, crashes = {}, {}
    todo = [str(p) for p in paths]
    while todo:
        proc = subprocess.run([sys.executable, "-c", _CHILD, package] + todo,
                              capture_output=True, text=True, timeout=600)
        current = None
        for line in proc.stdout.splitlines():
            word, _, rest = line.partition(" ")
            if word == "READ":
                current = rest
            elif word == "OK":
                results[current] = ("OK", rest)
            elif word == "ERROR":
                status, named = rest.split()
                results[current] = ("ERROR", int(status), named == "1")
        if proc.returncode == 0:
            break
        if current is None or current in results:
            pytest.fail("child process failed outside read_dicom (exit %d):\n%s"
                        % (proc.returncode, proc.stderr[-3000:]))
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        crashes[current] = "exit %d: %s" % (proc.returncode, last[-300:])
        todo = todo[todo.index(current) + 1:]
    return results, crashes


def _crash_report(crashes, original):
    lines = []
    for path, why in sorted(crashes.items()):
        changed = ""
        if os.path.exists(original):
            a, b = open(original, "rb").read(), open(path, "rb").read()
            if len(a) != len(b):
                changed = " (first %d bytes of %d)" % (len(b), len(a))
            else:
                diff = [i for i in range(len(a)) if a[i] != b[i]]
                changed = " (bytes %s changed to %s)" % (diff, [b[i] for i in diff])
        lines.append("%s%s\n    %s" % (os.path.basename(path), changed, why))
    return "%d file(s) crashed the process instead of raising IchError:\n%s" % (
        len(crashes), "\n".join(lines[:15]))


def test_truncated_copies_of_ct_small(test_files, tmp_path):
    """CT_small.dcm cut anywhere before the end of its pixel data is an
    IchError naming the file, never a crash or garbage pixels."""
    import hashlib

    original = os.path.join(test_files, "CT_small.dcm")
    data = open(original, "rb").read()
    reference = hashlib.sha256(ich.read_dicom(original).pixels.tobytes()).hexdigest()
    pixel_end = data.rfind(b"\xfc\xff\xfc\xff")  # trailing padding after the pixels
    assert data[pixel_end + 4:pixel_end + 6] == b"OB" and pixel_end == 6300 + 128 * 128 * 2
    cuts = [1, 4, 100, 128, 131, 132, 133, 136, 140, 150, 200, 333, 500, 1000, 3000, 6288,
            6290, 6296, 6300, 6302, 10000, len(data) // 2, pixel_end - 1000, pixel_end - 2,
            pixel_end - 1]
    padding_cuts = [pixel_end, pixel_end + 2, pixel_end + 10, pixel_end + 32, len(data) - 1]
    paths = {}
    for cut in cuts + padding_cuts:
        paths[cut] = tmp_path / ("cut_%05d.dcm" % cut)
        paths[cut].write_bytes(data[:cut])
    results, crashes = read_in_child(paths.values())
    assert not crashes, _crash_report(crashes, original)
    for cut in cuts:
        result = results[str(paths[cut])]
        assert result[0] == "ERROR" and result[2], (cut, result)
    # cut inside the trailing padding: the pixels are whole, so either answer
    # is fine, but a success must give the right pixels
    for cut in padding_cuts:
        result = results[str(paths[cut])]
        assert result in (("OK", reference),) or (result[0] == "ERROR" and result[2]), \
            (cut, result)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm",
                                  "MR_small_jp2klossless.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_bigendian.dcm", "JPEG2000.dcm"])
def test_corrupted_bytes_never_crash(test_files, tmp_path, rng, name):
    """Copies with 1 to 8 random bytes changed give an image or an IchError
    naming the file, never a crash."""
    original = os.path.join(test_files, name)
    data = open(original, "rb").read()
    paths = []
    for trial in range(24):
        copy = bytearray(data)
        for pos in rng.integers(0, len(copy), 1 + trial % 8):
            copy[pos] = int(rng.integers(0, 256))
        paths.append(tmp_path / ("%02d_%s" % (trial, name)))
        paths[-1].write_bytes(bytes(copy))
    results, crashes = read_in_child(paths)
    assert not crashes, _crash_report(crashes, original)
    assert len(results) == len(paths)
    for path, result in results.items():
        assert result[0] == "OK" or result[2], (path, result)


@pytest.mark.parametrize("batch", range(4))
def test_mutated_headers_of_every_test_file_never_crash(test_files, tmp_path, batch):
    """Mutations aimed at the headers of every pydicom test file (bytes set
    to 0x00, 0xFF or random in the first 4 KB, some files also cut short):
    an image or an IchError, never an abort. Debian's GDCM asserts on
    malformed headers, so this guards libich's own checks in front of it."""
    import random

    rng = random.Random(1000 + batch)
    sources = sorted(p for p in glob.glob(os.path.join(test_files, "**", "*"), recursive=True)
                     if os.path.isfile(p) and os.path.getsize(p) < 2_000_000)
    paths = []
    for trial in range(150):
        source = rng.choice(sources)
        data = bytearray(open(source, "rb").read())
        for _ in range(rng.randint(1, 8)):
            limit = min(len(data), 4000) if rng.random() < 0.8 else len(data)
            data[rng.randrange(limit)] = rng.choice([0, 0xFF, rng.randrange(256)])
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data))]
        paths.append(tmp_path / ("%03d_%s" % (trial, os.path.basename(source))))
        paths[-1].write_bytes(bytes(data))
    results, crashes = read_in_child(paths)
    assert not crashes, _crash_report(crashes, "")
    assert len(results) == len(paths)


def test_header_turned_into_a_long_vr_is_an_error(test_files, tmp_path):
    """A VR changed from SH to SV (whose length field is 4 bytes, not 2)
    makes the element claim far more bytes than the file holds; found by
    fuzzing, it used to abort the process inside GDCM."""
    data = bytearray(open(os.path.join(test_files, "CT_small.dcm"), "rb").read())
    assert data[884:886] == b"SH"
    data[885] = ord("V")
    path = tmp_path / "sv.dcm"
    path.write_bytes(bytes(data))
    results, crashes = read_in_child([path])
    assert not crashes, crashes
    status, message_names_file = results[str(path)][1:]
    assert status == 4 and message_names_file


def test_fuzz_regressions(tmp_path):
    """Every input the fuzzer found (tests/fuzz/regressions) gives an image
    or an IchError naming it, in a child process so that an abort is a
    failure rather than the end of the run."""
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "fuzz",
                          "regressions")
    paths = sorted(glob.glob(os.path.join(folder, "*.dcm")))
    assert len(paths) >= 4
    results, crashes = read_in_child(paths)
    assert not crashes, _crash_report(crashes, "")
    assert len(results) == len(paths)
    for path, result in results.items():
        assert result[0] == "OK" or result[2], (path, result)


def test_every_test_file_reads_or_raises(test_files):
    """All of pydicom's test files, DICOM or not: an image or an IchError
    that names the file, never a crash."""
    paths = list(_all_files(test_files))
    results, crashes = read_in_child(paths)
    assert not crashes, _crash_report(crashes, "")
    assert len(results) == len(paths) > 100
    unnamed = [p for p, r in results.items() if r[0] == "ERROR" and not r[2]]
    assert not unnamed
    ok = sum(1 for r in results.values() if r[0] == "OK")
    assert ok >= 40, ok


def test_library_prints_nothing(test_files, tmp_path):
    """libich never writes to stdout or stderr (only through the log
    callback), not even when GDCM's codecs or parsers complain."""
    import subprocess
    import sys

    names = ["CT_small.dcm", "JPEG-lossy.dcm", "JPGExtended.dcm", "JPEG2000.dcm",
             "JPEG2000-embedded-sequence-delimiter.dcm", "GDCMJ2K_TextGBR.dcm",
             "MR_small_jpeg_ls_lossless.dcm", "no_meta.dcm", "rtplan.dcm", "MR_truncated.dcm",
             "SC_rgb_jpeg_gdcm.dcm", "badVR.dcm"]
    paths = [os.path.join(test_files, n) for n in names] + [str(tmp_path / "missing.dcm")]
    package = os.path.dirname(os.path.dirname(os.path.abspath(ich.__file__)))
    proc = subprocess.run([sys.executable, "-c", _CHILD, package] + paths,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == "", "libich printed to stderr:\n" + proc.stderr
    lines = [l for l in proc.stdout.splitlines() if l.split(" ", 1)[0] not in
             ("READ", "OK", "ERROR")]
    assert lines == [], "libich printed to stdout:\n" + "\n".join(lines)


_CODEC_LOG_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import ich
lines = []
ich.set_log_callback(lambda level, message: lines.append(message), ich.LOG_WARNING)
for path in sys.argv[2:]:
    try:
        ich.read_dicom(path)
    except ich.IchError:
        pass
for line in lines:
    print("LOG", line)
"""


def test_codec_messages_reach_the_log(test_files, tmp_path):
    """GDCM's bundled libjpeg ("Unsupported JPEG data precision 12", while
    GDCM tries its 8-bit decoder on a 12-bit slice) and OpenJPEG (through
    the error handler GDCM installs) printed to stderr; their messages now
    reach the log callback, and nothing is printed."""
    import subprocess
    import sys

    bad_tile = _hostile().j2k_bad_tile_index(tmp_path / "tile.dcm")
    paths = [os.path.join(test_files, "JPEG-lossy.dcm"), bad_tile]
    package = os.path.dirname(os.path.dirname(os.path.abspath(ich.__file__)))
    proc = subprocess.run([sys.executable, "-c", _CODEC_LOG_CHILD, package] + paths,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == "", "printed to stderr:\n" + proc.stderr
    log = [l[4:] for l in proc.stdout.splitlines() if l.startswith("LOG ")]
    assert "GDCM JPEG codec: Unsupported JPEG data precision 12" in log, log
    assert any(l.startswith("GDCM JPEG 2000 codec: ") and "tile" in l for l in log), log


# ---- writing ---------------------------------------------------------------

def _uid(n):
    return "1.2.826.0.1.3680043.8.498.%d" % n


def test_write_ct_round_trip(tmp_path, rng):
    pixels = rng.integers(-32768, 32768, size=(37, 53), dtype=np.int16)
    pixels[0, 0], pixels[-1, -1] = -32768, 32767
    meta = dict(rescale_slope=0.5, rescale_intercept=-1024.0,
                pixel_spacing=(0.48828125, 0.75), slice_thickness=5.0,
                image_position=(-125.5, -130.25, 42.75), instance_number=17,
                window_center=40.0, window_width=80.0, patient_id="PID-123",
                study_instance_uid=_uid(1), series_instance_uid=_uid(2),
                sop_instance_uid=_uid(3))
    path = tmp_path / "slice.dcm"
    ich.write_ct(path, pixels, **meta)
    assert sorted(os.listdir(tmp_path)) == ["slice.dcm"]  # no temporary left

    img = ich.read_dicom(path)
    assert img.pixels.dtype == np.int16
    np.testing.assert_array_equal(img.pixels, pixels)
    np.testing.assert_array_equal(
        img.hu, pixels.astype(np.float32) * np.float32(0.5) + np.float32(-1024.0))
    assert img.modality == "CT" and img.photometric == "MONOCHROME2"
    assert img.transfer_syntax == EXPLICIT_VR_LE
    assert (img.bits_allocated, img.bits_stored, img.pixel_representation) == (16, 16, 1)
    for key in ("rescale_slope", "rescale_intercept", "pixel_spacing", "slice_thickness",
                "image_position", "instance_number", "window_center", "window_width",
                "patient_id", "study_instance_uid", "series_instance_uid",
                "sop_instance_uid"):
        assert getattr(img, key) == meta[key], key

    ds = pydicom.dcmread(str(path))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_VR_LE
    assert ds.SOPClassUID == CT_IMAGE_STORAGE
    assert ds.file_meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE
    assert ds.file_meta.MediaStorageSOPInstanceUID == _uid(3)
    np.testing.assert_array_equal(ds.pixel_array, pixels)
    assert float(ds.RescaleSlope) == 0.5 and float(ds.RescaleIntercept) == -1024.0
    assert [float(v) for v in ds.PixelSpacing] == [0.48828125, 0.75]
    assert [float(v) for v in ds.ImagePositionPatient] == [-125.5, -130.25, 42.75]
    assert float(ds.SliceThickness) == 5.0
    assert int(ds.InstanceNumber) == 17
    assert float(_first(ds.WindowCenter)) == 40.0 and float(_first(ds.WindowWidth)) == 80.0
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == \
        (_uid(1), _uid(2), _uid(3))
    assert ds.PatientID == "PID-123" and ds.Modality == "CT"
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation,
            ds.SamplesPerPixel) == (37, 53, 16, 16, 1, 1)


def test_write_ct_defaults(tmp_path):
    pixels = np.arange(12, dtype=np.int16).reshape(3, 4) - 6
    ich.write_ct(tmp_path / "a.dcm", pixels)
    ich.write_ct(tmp_path / "b.dcm", pixels)
    a, b = ich.read_dicom(tmp_path / "a.dcm"), ich.read_dicom(tmp_path / "b.dcm")
    np.testing.assert_array_equal(a.pixels, pixels)
    np.testing.assert_array_equal(a.hu, pixels.astype(np.float32) - 1024)
    assert a.rescale_slope == 1.0 and a.rescale_intercept == -1024.0
    assert a.pixel_spacing == (1.0, 1.0)
    assert math.isnan(a.slice_thickness)  # 0 means absent
    assert math.isnan(a.window_center) and math.isnan(a.window_width)
    assert a.patient_id == "ANONYMOUS"
    uids = {a.study_instance_uid, a.series_instance_uid, a.sop_instance_uid,
            b.study_instance_uid, b.series_instance_uid, b.sop_instance_uid}
    assert len(uids) == 6  # generated, all different
    for uid in uids:
        assert pydicom.uid.UID(uid).is_valid, uid
    ds = pydicom.dcmread(str(tmp_path / "a.dcm"))
    assert "WindowCenter" not in ds and "SliceThickness" not in ds
    np.testing.assert_array_equal(ds.pixel_array, pixels)


def test_write_ct_accepts_small_integer_arrays(tmp_path):
    pixels = np.array([[0, 1000], [-1000, 32767]], dtype=np.int64)
    ich.write_ct(tmp_path / "c.dcm", pixels)
    np.testing.assert_array_equal(ich.read_dicom(tmp_path / "c.dcm").pixels, pixels)
    with pytest.raises(ValueError):
        ich.write_ct(tmp_path / "d.dcm", np.array([[40000]]))
    with pytest.raises(TypeError):
        ich.write_ct(tmp_path / "d.dcm", np.zeros((2, 2), np.float32))
    assert not (tmp_path / "d.dcm").exists()


def test_write_ct_errors(tmp_path):
    good = np.zeros((4, 4), np.int16)
    with pytest.raises(ich.IchError) as info:
        ich.write_ct(tmp_path / "x.dcm", good, sop_instance_uid="not a uid")
    assert info.value.status == ich.ERR_INVALID_ARGUMENT
    with pytest.raises(ich.IchError) as info:
        ich.write_ct(tmp_path / "x.dcm", good, study_instance_uid="1.2." + "3" * 70)
    assert info.value.status == ich.ERR_INVALID_ARGUMENT
    with pytest.raises(ich.IchError) as info:
        ich.write_ct(tmp_path / "x.dcm", np.zeros((0, 4), np.int16))
    assert info.value.status == ich.ERR_INVALID_ARGUMENT
    with pytest.raises(ich.IchError):
        ich.write_ct(tmp_path / "x.dcm", np.zeros((2, 2, 2), np.int16))
    with pytest.raises(ich.IchError) as info:
        ich.write_ct(tmp_path / "no" / "such" / "dir.dcm", good)
    assert info.value.status == ich.ERR_IO
    assert isinstance(info.value, OSError)
    assert os.listdir(tmp_path) == []  # nothing left behind by any failure


def test_write_ct_non_contiguous_input(tmp_path, rng):
    base = rng.integers(-2000, 3000, size=(20, 30), dtype=np.int16)
    view = base[::2, ::3].T  # strided and transposed
    ich.write_ct(tmp_path / "v.dcm", view)
    np.testing.assert_array_equal(ich.read_dicom(tmp_path / "v.dcm").pixels, view)


# ---- Hostile files (issue 12) ---------------------------------------------
# One file of each class that aborted, exhausted memory, hung or passed as
# valid, made with pydicom by tests/hostile_dicom.py. Each is read in a
# child process that reports its own peak memory and time, so an abort or
# a 4 GB allocation is a failure of this test rather than of the run.

sys_path_tests = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests")


def _hostile():
    import sys

    if sys_path_tests not in sys.path:
        sys.path.insert(0, sys_path_tests)
    import hostile_dicom

    return hostile_dicom


# Peak memory of one read of a hostile file, interpreter included: the
# previous library took 1.3 to 3 GB on these; libich's limits keep a read
# under about 0.5 GB (the margin is for sanitizer builds, whose allocator
# keeps freed blocks in quarantine).
PEAK_MIB = 600

_MEASURED_CHILD = """
import os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import ich
start = time.monotonic()
try:
    ich.read_dicom(sys.argv[2])
    result = "OK 0 1 -"
except ich.IchError as err:
    result = "ERROR %d %d %s" % (err.status, int(os.path.basename(sys.argv[2]) in err.message),
                                 err.message.replace(chr(10), " "))
# this process's own peak, VmHWM: ru_maxrss keeps the parent's resident
# size at the fork across exec (pytest's, with torch loaded: 885 MB)
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024.0
print("%s\\n%.1f %.3f" % (result, peak, time.monotonic() - start))
"""


def read_measured(path, timeout=60):
    """Read `path` with ich.read_dicom in a child process: (word, status,
    message names the file, message, peak memory in MiB, seconds). A crash,
    an abort or a timeout fails the test."""
    import subprocess
    import sys

    package = os.path.dirname(os.path.dirname(os.path.abspath(ich.__file__)))
    try:
        proc = subprocess.run([sys.executable, "-c", _MEASURED_CHILD, package, str(path)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("%s: ich.read_dicom did not return within %d s" % (path, timeout))
    assert proc.returncode == 0, "%s: child exited %d:\n%s" % (path, proc.returncode,
                                                              proc.stderr[-2000:])
    first, second = proc.stdout.strip().splitlines()[-2:]
    word, status, named, message = first.split(" ", 3)
    peak, seconds = second.split()
    return word, int(status), named == "1", message, float(peak), float(seconds)


@pytest.mark.parametrize("kind", ["bits12_long_data", "bits12_one_by_three", "bits12_stored8",
                                  "bits24_stored16", "bits8_stored4", "bits1_signed"])
def test_bit_layouts_that_aborted_are_unsupported(kind, tmp_path):
    """The five kinds of bit layout that made GDCM fail an assertion (exit
    134) give ICH_ERR_UNSUPPORTED naming the file; pydicom reads the same
    attributes from the file."""
    path = _hostile().ALL[kind](tmp_path / (kind + ".dcm"))
    ds = pydicom.dcmread(path)
    word, status, named, message, _, _ = read_measured(path)
    assert (word, status, named) == ("ERROR", ich.ERR_UNSUPPORTED, True), message
    assert "bit" in message
    if ds.BitsAllocated not in (1, 8, 16, 32):
        assert "BitsAllocated (0028,0100) is %d" % ds.BitsAllocated in message


def test_supported_bit_layouts_still_match_pydicom(tmp_path):
    """The layouts that stay readable (16 bits with fewer stored, 8 of 8)
    give pydicom's pixel_array."""
    h = _hostile()
    rng = np.random.default_rng(5)
    for allocated, stored, signed in [(16, 12, False), (16, 12, True), (16, 16, True),
                                      (8, 8, False), (8, 8, True)]:
        # values within BitsStored (pydicom leaves unsigned high bits as they are)
        low, high = (-(1 << (stored - 1)), 1 << (stored - 1)) if signed else (0, 1 << stored)
        dtype = {(16, True): np.int16, (16, False): np.uint16, (8, True): np.int8,
                 (8, False): np.uint8}[(allocated, signed)]
        raw = rng.integers(low, high, size=(16, 16)).astype(dtype)
        path = h._save(h._dataset(16, 16, allocated, stored, stored - 1, signed, raw.tobytes()),
                       tmp_path / ("%d_%d_%d.dcm" % (allocated, stored, signed)))
        image = ich.read_dicom(path)
        np.testing.assert_array_equal(image.pixels, pydicom.dcmread(path).pixel_array)


@pytest.mark.parametrize("name", ["text_length", "SC_rgb_jpeg.dcm"])
def test_mislabelled_data_set_is_refused_before_gdcm_allocates(name, tmp_path, test_files):
    """A data set written implicit VR under an explicit VR syntax: GDCM's
    VR16 fallback read an element length from text and allocated it (2.1 GB
    for the generated file, 1.3 GB for pydicom's SC_rgb_jpeg.dcm). The
    pre-check reads it the same way and refuses it; peak memory stays small."""
    if name.endswith(".dcm"):
        path = os.path.join(test_files, name)
    else:
        path = _hostile().text_length(tmp_path / "text_length.dcm")
    word, status, named, message, peak, _ = read_measured(path)
    assert (word, status, named) == ("ERROR", ich.ERR_FORMAT, True), message
    assert "implicit VR under an explicit VR transfer syntax" in message
    assert peak < PEAK_MIB, peak


def test_deflate_bomb_is_refused_by_the_inflate_limit(tmp_path):
    """0.3 MB deflated, 288 MiB inflated: refused at max_decoded_bytes (128
    MiB) while inflating; it used to take 1.7 GB."""
    path = _hostile().deflate_bomb(tmp_path / "bomb.dcm")
    assert os.path.getsize(path) < 1 << 20
    word, status, named, message, peak, _ = read_measured(path)
    assert (word, status, named) == ("ERROR", ich.ERR_UNSUPPORTED, True), message
    assert "max_decoded_bytes" in message
    assert peak < PEAK_MIB, peak


def test_huge_rle_image_is_refused_by_the_pixel_limit(tmp_path):
    path = _hostile().rle_huge(tmp_path / "rle.dcm")
    assert pydicom.dcmread(path).Rows == 16384
    word, status, named, message, peak, seconds = read_measured(path)
    assert (word, status, named) == ("ERROR", ich.ERR_UNSUPPORTED, True), message
    assert "max_pixels" in message and "16384 x 16384" in message
    assert peak < PEAK_MIB and seconds < 5, (peak, seconds)


def test_huge_file_is_refused_by_its_size_without_reading_it(tmp_path):
    """A sparse 3 GB file: refused by max_file_bytes before it is read."""
    path = _hostile().huge_file(tmp_path / "huge.dcm")
    word, status, named, message, peak, seconds = read_measured(path)
    assert (word, status, named) == ("ERROR", ich.ERR_UNSUPPORTED, True), message
    assert "max_file_bytes" in message and str(3 << 30) in message
    assert peak < PEAK_MIB and seconds < 5, (peak, seconds)


def test_fifo_is_refused_at_once(tmp_path):
    """ich.read_dicom on a named pipe used to block for ever."""
    path = _hostile().fifo(tmp_path / "pipe.dcm")
    word, status, named, message, _, seconds = read_measured(path, timeout=20)
    assert (word, status, named) == ("ERROR", ich.ERR_IO, True), message
    assert "FIFO" in message and seconds < 2
    with pytest.raises(ich.IchIOError):
        ich.read_dicom("/dev/null")
    with pytest.raises(ich.IchIOError):
        ich.read_dicom(str(tmp_path))


def test_truncated_jpeg_ls_is_refused_quickly(tmp_path):
    """A 64 x 64 JPEG-LS slice with its fragment cut in half cost 10 s of
    CPU inside CharLS; the fragment must end with EOI. The whole file still
    decodes as pydicom decodes it."""
    path = _hostile().jpegls_truncated(tmp_path / "jls.dcm")
    word, status, named, message, _, seconds = read_measured(path)
    assert (word, status, named) == ("ERROR", ich.ERR_FORMAT, True), message
    assert "JPEG-LS" in message and seconds < 2, seconds


def test_jpeg2000_marker_walk_past_the_fragment_is_refused(tmp_path, test_files):
    """GDCM's JPEG 2000 codec walks the marker segments of the first
    fragment without bounding them by its size; a length past the end made
    it read beyond the buffer (a fuzzer's crash). Such a stream is refused
    before GDCM sees it; pydicom's good JPEG 2000 slices still decode as
    pydicom decodes them."""
    path = _hostile().j2k_marker_overrun(tmp_path / "j2k.dcm")
    word, status, named, message, _, _ = read_measured(path)
    assert (word, status, named) == ("ERROR", ich.ERR_FORMAT, True), message
    assert "JPEG 2000" in message and "runs past the end" in message
    for name in ("MR_small_jp2klossless.dcm", "JPEG2000.dcm"):
        good = os.path.join(test_files, name)
        np.testing.assert_array_equal(ich.read_dicom(good).pixels,
                                      pydicom.dcmread(good).pixel_array)


@pytest.mark.parametrize("kind,tag", [("rescale_slope_huge", "RescaleSlope (0028,1053)"),
                                      ("rescale_intercept_huge", "RescaleIntercept (0028,1052)"),
                                      ("rescale_intercept_nan", "RescaleIntercept (0028,1052)"),
                                      ("rescale_intercept_text", "RescaleIntercept (0028,1052)")])
def test_absurd_rescale_values_are_errors(kind, tag, tmp_path):
    """RescaleSlope 1e300 and RescaleIntercept -1e39 gave +-inf HU; "NaN"
    and unparsable text were taken as 0 (HU off by 1024)."""
    path = _hostile().ALL[kind](tmp_path / (kind + ".dcm"))
    with pytest.raises(ich.FormatError) as info:
        ich.read_dicom(path)
    assert os.path.basename(path) in info.value.message and tag in info.value.message


def test_large_but_finite_rescale_matches_pydicom(tmp_path):
    """Values within the bound (|v| <= 1e9) are read, and the HU are
    pydicom's apply_modality_lut."""
    path = _hostile()._rescale(tmp_path / "big.dcm", "1e9", "-5e8")
    image = ich.read_dicom(path)
    ds = pydicom.dcmread(path)
    expected = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    np.testing.assert_allclose(image.hu, expected, rtol=1e-6)
    assert np.isfinite(image.hu).all()


def test_limits_defaults_and_options(tmp_path):
    """The limits: defaults, per call, process-wide; each exceeded one is
    named in the error."""
    assert ich.default_dicom_limits() == {"max_file_bytes": 128 << 20,
                                          "max_pixels": 4096 * 4096,
                                          "max_decoded_bytes": 128 << 20}
    assert ich.dicom_limits() == ich.default_dicom_limits()
    path = tmp_path / "slice.dcm"
    ich.write_ct(path, np.arange(48 * 64, dtype=np.int16).reshape(48, 64))
    size = os.path.getsize(path)
    assert ich.read_dicom(path, limits={"max_pixels": 48 * 64}).shape == (48, 64)
    for limits, name in [({"max_pixels": 48 * 64 - 1}, "max_pixels"),
                         ({"max_file_bytes": size - 1}, "max_file_bytes"),
                         ({"max_decoded_bytes": 48 * 64 * 2 - 1}, "max_decoded_bytes")]:
        with pytest.raises(ich.UnsupportedError) as info:
            ich.read_dicom(path, limits=limits)
        assert name in info.value.message and "slice.dcm" in info.value.message
        with pytest.raises(ich.UnsupportedError):
            ich.read_dicom_bytes(open(path, "rb").read(), name="bytes", limits=limits)
    previous = ich.set_dicom_limits(max_pixels=100)
    try:
        assert previous == ich.default_dicom_limits()
        assert ich.dicom_limits()["max_pixels"] == 100
        with pytest.raises(ich.UnsupportedError, match="max_pixels"):
            ich.read_dicom(path)
        # a per-call dict starts from the defaults, not the process-wide values
        assert ich.read_dicom(path, limits={}).shape == (48, 64)
    finally:
        ich.set_dicom_limits()
    assert ich.dicom_limits() == ich.default_dicom_limits()
    with pytest.raises(ValueError):
        ich.read_dicom(path, limits={"max_pixel": 1})
    with pytest.raises(ValueError):
        ich.set_dicom_limits(max_pixels=0)


def test_inflate_limit_on_a_real_deflated_file(test_files):
    """pydicom's deflated image_dfl.dcm reads as pydicom reads it, and is
    refused while inflating when max_decoded_bytes is below its size (a
    limit smaller than zlib's first output block included)."""
    path = os.path.join(test_files, "image_dfl.dcm")
    image = ich.read_dicom(path)
    np.testing.assert_array_equal(image.pixels, pydicom.dcmread(path).pixel_array)
    for limit in (100, 5000, 20000):
        with pytest.raises(ich.UnsupportedError, match="max_decoded_bytes"):
            ich.read_dicom(path, limits={"max_decoded_bytes": limit})


def test_gdcm_messages_go_to_the_log(test_files):
    """GDCM's own error messages reach the log callback as "GDCM: ..."
    lines at LOG_WARNING (they went to a discarded stream before); badVR.dcm
    still reads."""
    lines = []
    ich.set_log_callback(lambda level, message: lines.append((level, message)), level="debug")
    try:
        ich.read_dicom(os.path.join(test_files, "badVR.dcm"))
    finally:
        ich.set_log_callback(None)
    gdcm = [(level, m) for level, m in lines if m.startswith("GDCM: ")]
    assert gdcm and all(level == ich.LOG_WARNING for level, _ in gdcm), lines


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"] + MONOCHROME1_FILES)
def test_window_apply_file_equals_apply_on_the_decoded_slice(test_files, name):
    """Window.apply_file decodes and windows in C (ich_window_apply_dicom_*):
    its result is the independent numpy window of pydicom's modality LUT
    (MONOCHROME1 inverted for display) and equals apply(read_dicom())."""
    path = os.path.join(test_files, name)
    ds = pydicom.dcmread(path)
    reference = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    invert = ds.PhotometricInterpretation == "MONOCHROME1"
    center, width = float(reference.mean()), float(np.ptp(reference)) / 2
    with ich.Window([(center, width), (center + width / 4, width * 2)]) as win:
        f32 = win.apply_file(path, dtype=np.float32)
        assert f32.shape == (2,) + reference.shape
        np.testing.assert_allclose(f32[0], _window_reference(reference, center, width, invert),
                                   atol=1e-5)
        img = ich.read_dicom(path)
        np.testing.assert_array_equal(f32, win.apply(img, dtype=np.float32))
        u8 = win.apply_file(path)
        assert u8.dtype == np.uint8 and u8.shape == reference.shape + (2,)
        np.testing.assert_array_equal(u8, win.apply(img))


def test_window_apply_file_errors_name_the_file(tmp_path, test_files):
    with ich.Window([(40, 80)]) as win:
        missing = tmp_path / "missing.dcm"
        with pytest.raises(ich.IchIOError, match="missing.dcm"):
            win.apply_file(missing)
        truncated = tmp_path / "truncated.dcm"
        data = open(os.path.join(test_files, "CT_small.dcm"), "rb").read()
        truncated.write_bytes(data[: len(data) // 2])
        with pytest.raises(ich.FormatError, match="truncated.dcm"):
            win.apply_file(truncated)
        with pytest.raises(ich.UnsupportedError):
            win.apply_file(os.path.join(test_files, "CT_small.dcm"),
                           limits={"max_pixels": 100})
        with pytest.raises(TypeError):
            win.apply_file(os.path.join(test_files, "CT_small.dcm"), dtype=np.int16)
