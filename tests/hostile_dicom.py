"""Hostile DICOM files, one per class of issue 12, made with pydicom.

Each generator writes one file (or FIFO) and returns its path. They are
used by bindings/python/tests/test_dicom.py and
tests/cli/test_hostile_dicom.py; copies of the small ones are in
tests/fuzz/regressions (the fuzzer's seeds and the regression corpus).

Classes:
  bits_*          bit layouts that made GDCM fail an assertion (exit 134)
  text_length     an element length GDCM reads from text (its "VR16"
                  fallback for a mislabelled data set): a 2 GB allocation
  deflate_bomb    a small deflated file of a very large image
  rle_huge        a small RLE file of a very large image
  jpegls_truncated  a JPEG-LS slice whose fragment is cut short
  j2k_marker_overrun  a JPEG 2000 slice with a marker segment length that
                  runs past its fragment: GDCM's walk of the markers read
                  beyond the buffer (a crash found by fuzzing)
  rescale_*       absurd or unparsable RescaleSlope/RescaleIntercept
  huge_file       a 3 GB (sparse) file
  fifo            a named pipe
"""

import io
import os
import warnings
import zlib

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

TEST_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _dataset(rows, columns, allocated, stored, high_bit, signed, pixel_bytes,
             syntax=ExplicitVRLittleEndian, intercept="-1024 ", slope="1.0000"):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientID = "HOSTILE"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = allocated
    ds.BitsStored = stored
    ds.HighBit = high_bit
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    ds.PixelData = pixel_bytes
    ds["PixelData"].VR = "OB" if allocated <= 8 else "OW"
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    return ds


def _save(ds, path):
    ds.save_as(str(path), write_like_original=False)
    return str(path)


# ---- bit layouts that aborted inside GDCM --------------------------------

def bits12_long_data(path):
    """BitsAllocated 12 with more pixel data than 12 bits per pixel need."""
    return _save(_dataset(64, 64, 12, 12, 11, False, bytes(64 * 64 * 2)), path)


def bits12_one_by_three(path):
    """BitsAllocated 12, a 1x3 image."""
    return _save(_dataset(1, 3, 12, 12, 11, False, bytes(6)), path)


def bits12_stored8(path):
    """BitsAllocated 12 with BitsStored below it."""
    return _save(_dataset(64, 64, 12, 8, 7, False, bytes(64 * 64 * 3 // 2)), path)


def bits24_stored16(path):
    """BitsAllocated 24 with BitsStored below it."""
    return _save(_dataset(64, 64, 24, 16, 15, False, bytes(64 * 64 * 3)), path)


def bits8_stored4(path):
    """BitsAllocated 8, BitsStored 4."""
    return _save(_dataset(64, 64, 8, 4, 3, False, bytes(64 * 64)), path)


def bits1_signed(path):
    """BitsAllocated 1 with signed pixels."""
    return _save(_dataset(64, 64, 1, 1, 0, True, bytes(64 * 64 // 8)), path)


BIT_LAYOUTS = [bits12_long_data, bits12_one_by_three, bits12_stored8, bits24_stored16,
               bits8_stored4, bits1_signed]


# ---- memory ---------------------------------------------------------------

def text_length(path):
    """A data set written implicit VR under an explicit VR transfer syntax
    (as pydicom's SC_rgb_jpeg.dcm). GDCM's explicit reading fails on the
    first element and retries with 16-bit lengths ("VR16"): the first
    element's 32-bit length becomes a 2-byte VR and a 2-byte length of 0,
    so its text value is read as the next element header: tag "AAAA", VR
    "OB", then the 32-bit length "~~~~" (0x7E7E7E7E, 2.1 GB), which GDCM
    allocated before reading."""
    good = _dataset(8, 8, 16, 16, 15, True, bytes(128))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        good.ImageType = "AAAAOB  ~~~~"  # (0008,0008), the first element
    good.is_implicit_VR = True
    data = open(_save(good, path), "rb").read()
    open(path, "wb").write(_set_syntax(data, ExplicitVRLittleEndian))
    return str(path)


def _set_syntax(data, syntax):
    """`data` (a Part 10 file) with its Transfer Syntax UID replaced, the
    meta group length fixed."""
    head = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    meta_end = 132 + 12 + int(head.file_meta.FileMetaInformationGroupLength)
    meta = FileMetaDataset(head.file_meta)
    meta.TransferSyntaxUID = syntax
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_file_meta_info(out, meta, enforce_standard=True)
    return data[:128] + b"DICM" + out.getvalue() + data[meta_end:]


def deflate_bomb(path, rows=12288, columns=12288):
    """Deflated Explicit VR Little Endian: a 12288 x 12288 16-bit image of
    zeros (288 MiB inflated) in about 0.3 MB."""
    ds = _dataset(8, 8, 16, 16, 15, True, bytes(128))
    raw = _save(ds, str(path) + ".plain")
    data = open(raw, "rb").read()
    os.unlink(raw)
    head = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    meta_end = 132 + 12 + int(head.file_meta.FileMetaInformationGroupLength)
    body = bytearray(data[meta_end:data.index(b"\xe0\x7f\x10\x00")])
    # Rows and Columns (US, value 8): patch them to the large size.
    for tag, value in ((b"\x28\x00\x10\x00US\x02\x00", rows), (b"\x28\x00\x11\x00US\x02\x00", columns)):
        at = body.index(tag) + len(tag)
        body[at:at + 2] = value.to_bytes(2, "little")
    n = rows * columns * 2
    pixel_header = b"\xe0\x7f\x10\x00OW\x00\x00" + n.to_bytes(4, "little")
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = z.compress(bytes(body) + pixel_header)
    chunk = bytes(1 << 20)
    for _ in range(n >> 20):
        deflated += z.compress(chunk)
    deflated += z.compress(bytes(n & ((1 << 20) - 1))) + z.flush()
    with_syntax = _set_syntax(data[:meta_end], "1.2.840.10008.1.2.1.99")
    open(path, "wb").write(with_syntax + deflated)
    return str(path)


def _encapsulated(ds, fragment, syntax):
    from pydicom.encaps import encapsulate
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def rle_huge(path, rows=16384, columns=16384):
    """RLE Lossless of a 16384 x 16384 16-bit image: two segments of a few
    bytes each (a run of 128 zeros, again and again), 268 million pixels."""
    runs = bytes([0x81, 0]) * 4096  # each pair: 128 zeros
    header = (2).to_bytes(4, "little") + (64).to_bytes(4, "little") + \
        (64 + len(runs)).to_bytes(4, "little") + bytes(52)
    ds = _dataset(rows, columns, 16, 16, 15, True, b"")
    _encapsulated(ds, header + runs + runs, "1.2.840.10008.1.2.5")
    return _save(ds, path)


def jpegls_truncated(path):
    """pydicom's MR_small_jpeg_ls_lossless.dcm (64 x 64) with its JPEG-LS
    fragment cut to half: CharLS spent seconds on it."""
    from pydicom.encaps import generate_pixel_data_frame
    ds = pydicom.dcmread(os.path.join(TEST_FILES, "MR_small_jpeg_ls_lossless.dcm"))
    frame = next(generate_pixel_data_frame(ds.PixelData))
    cut = frame[:len(frame) // 2]
    cut += b"\x00" * (len(cut) % 2)
    from pydicom.encaps import encapsulate
    ds.PixelData = encapsulate([cut])
    return _save(ds, path)


def j2k_marker_overrun(path):
    """pydicom's MR_small_jp2klossless.dcm (64 x 64) whose first tile's SOD
    marker becomes a marker segment of 49653 bytes: the main header stays
    valid for OpenJPEG, and GDCM's marker walk, which follows the length
    without checking it, reads past the fragment (as the fuzzer's
    gdcm-jpeg2000-header-segv.dcm did)."""
    from pydicom.encaps import encapsulate, generate_pixel_data_frame
    ds = pydicom.dcmread(os.path.join(TEST_FILES, "MR_small_jp2klossless.dcm"))
    frame = bytearray(next(generate_pixel_data_frame(ds.PixelData)))
    sot = frame.index(b"\xff\x90")
    sod = sot + 2 + int.from_bytes(frame[sot + 2:sot + 4], "big")
    assert frame[sod:sod + 2] == b"\xff\x93"
    frame[sod:sod + 4] = b"\x00\x6c\xc1\xf5"
    ds.PixelData = encapsulate([bytes(frame)])
    return _save(ds, path)


def j2k_bad_tile_index(path):
    """pydicom's MR_small_jp2klossless.dcm whose first tile part says it is
    tile 255 of a one-tile image: every length is sound (libich's checks
    pass it on), and OpenJPEG refuses the tile with an error message,
    which GDCM prints to stderr unless libich routes it to its log."""
    from pydicom.encaps import encapsulate, generate_pixel_data_frame
    ds = pydicom.dcmread(os.path.join(TEST_FILES, "MR_small_jp2klossless.dcm"))
    frame = bytearray(next(generate_pixel_data_frame(ds.PixelData)))
    sot = frame.index(b"\xff\x90")
    frame[sot + 4:sot + 6] = (255).to_bytes(2, "big")  # Isot
    ds.PixelData = encapsulate([bytes(frame)])
    return _save(ds, path)


# ---- values ---------------------------------------------------------------

def _rescale(path, slope, intercept):
    """A good 64 x 64 slice whose rescale values are then replaced, as
    bytes, by `slope` and `intercept` (pydicom refuses to write some)."""
    pixels = (np.arange(64 * 64, dtype=np.int16) % 2000).tobytes()
    _save(_dataset(64, 64, 16, 16, 15, True, pixels, slope="77777777", intercept="88888888"),
          path)
    data = open(path, "rb").read()
    data = data.replace(b"77777777", slope.encode().ljust(8)).replace(
        b"88888888", intercept.encode().ljust(8))
    open(path, "wb").write(data)
    return str(path)


def rescale_slope_huge(path):
    return _rescale(path, "1e300", "-1024")


def rescale_intercept_huge(path):
    return _rescale(path, "1", "-1e39")


def rescale_intercept_nan(path):
    return _rescale(path, "1", "NaN")


def rescale_intercept_text(path):
    return _rescale(path, "1", "abc")


RESCALES = [rescale_slope_huge, rescale_intercept_huge, rescale_intercept_nan,
            rescale_intercept_text]


# ---- files that are not regular or too large -------------------------------

def huge_file(path, size=3 << 30):
    """A sparse 3 GB file that starts like a DICOM file."""
    with open(path, "wb") as f:
        f.write(bytes(128) + b"DICM")
        f.truncate(size)
    return str(path)


def fifo(path):
    os.mkfifo(path)
    return str(path)


# Every class: name -> generator. The small ones (all but huge_file and
# fifo) are also kept in tests/fuzz/regressions.
ALL = {f.__name__: f for f in BIT_LAYOUTS + [text_length, deflate_bomb, rle_huge,
                                             jpegls_truncated, j2k_marker_overrun] + RESCALES + [huge_file, fifo]}


def write_all(folder, names=None):
    """One file of each class (or of `names`) in `folder`: {name: path}."""
    os.makedirs(folder, exist_ok=True)
    return {name: ALL[name](os.path.join(str(folder), name + ".dcm"))
            for name in (names or ALL)}
