// The GDCM shim: the only C++ in libich. Exceptions never cross into C:
// every entry point catches them and turns them into an ich_status.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include <gdcmImageReader.h>
#include <gdcmImageWriter.h>
#include <gdcmJPEG2000Codec.h>
#include <gdcmJPEGCodec.h>
#include <gdcmJPEGLSCodec.h>
#include <gdcmReader.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmTrace.h>

extern "C" {
#include "core/blocks.h"
#include "core/error.h"
#include "dicom/codec_messages.h"
#include "dicom/codestream.h"
#include "dicom/framing.h"
#include "dicom/gdcm_shim.h"
}

namespace {

// GDCM reports problems on std::cerr by default; a library must not print.
// gdcm::Trace's streams go to a buffer that hands every line to libich's
// log (ich_log(), silent unless the application installs a callback).
// GDCM's trace streams are process-wide, so the buffer takes a lock.
class LogBuffer : public std::streambuf
{
  public:
    explicit LogBuffer(ich_log_level level) : level_(level) {}

  protected:
    int overflow(int c) override
    {
        if (c == traits_type::eof())
            return traits_type::not_eof(c);
        char ch = static_cast<char>(c);
        write(&ch, 1);
        return c;
    }
    std::streamsize xsputn(const char *s, std::streamsize n) override
    {
        write(s, n);
        return n;
    }

  private:
    // Complete lines are logged after the lock is released, so that a log
    // callback may itself call libich.
    void write(const char *s, std::streamsize n)
    {
        std::vector<std::string> lines;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (std::streamsize i = 0; i < n; i++) {
                if (s[i] != '\n') {
                    if (line_.size() < 4000) // an over-long line: keep its start
                        line_.push_back(s[i]);
                    continue;
                }
                size_t end = line_.find_last_not_of(" \r\t");
                if (end != std::string::npos)
                    lines.push_back(line_.substr(0, end + 1));
                line_.clear();
            }
        }
        for (const std::string &line : lines)
            ich_log(level_, "GDCM: %s", line.c_str());
    }
    ich_log_level level_;
    std::mutex mutex_;
    std::string line_;
};

void silence_gdcm()
{
    static std::once_flag once;
    std::call_once(once, [] {
        // Never destroyed: GDCM may write to them until the process ends.
        static LogBuffer *debug_buffer = new LogBuffer(ICH_LOG_DEBUG);
        static LogBuffer *warning_buffer = new LogBuffer(ICH_LOG_WARNING);
        static LogBuffer *error_buffer = new LogBuffer(ICH_LOG_WARNING);
        static std::ostream *debug_stream = new std::ostream(debug_buffer);
        static std::ostream *warning_stream = new std::ostream(warning_buffer);
        static std::ostream *error_stream = new std::ostream(error_buffer);
        gdcm::Trace::SetDebugStream(*debug_stream);
        gdcm::Trace::SetWarningStream(*warning_stream);
        gdcm::Trace::SetErrorStream(*error_stream);
        // Errors (a damaged file, a codec's complaint) reach the log.
        // Debug output is of no use to users, and warnings stay off: with
        // them on, GDCM's warning code changes the state of the stream it
        // reads (tellg on a stream at its end), and a damaged file that it
        // otherwise refuses then fails an assertion (a fuzz finding:
        // tests/fuzz/regressions/trailing-zeros-not-multiple-of-8.dcm).
        gdcm::Trace::SetDebug(false);
        gdcm::Trace::SetWarning(false);
        gdcm::Trace::SetError(true);
    });
}

// A read-only std::streambuf over bytes in memory (no copy, unlike
// std::istringstream), with the seeking GDCM's reader uses.
class MemoryBuffer : public std::streambuf
{
  public:
    // The get area is only read: the const_cast never leads to a write.
    MemoryBuffer(const char *data, size_t size)
    {
        char *p = const_cast<char *>(data);
        setg(p, p, p + size);
    }

  protected:
    pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override
    {
        char *base = dir == std::ios_base::beg ? eback() : dir == std::ios_base::cur ? gptr() : egptr();
        if (off < eback() - base || off > egptr() - base)
            return pos_type(off_type(-1));
        setg(eback(), base + off, egptr());
        return pos_type(gptr() - eback());
    }
    pos_type seekpos(pos_type pos, std::ios_base::openmode mode) override
    {
        return seekoff(off_type(pos), std::ios_base::beg, mode);
    }
};

// Text value of a string-VR element of the top-level data set, trailing
// spaces and NULs removed; empty when absent.
std::string text_of(const gdcm::DataSet &ds, uint16_t group, uint16_t element)
{
    const gdcm::Tag tag(group, element);
    if (!ds.FindDataElement(tag))
        return std::string();
    const gdcm::ByteValue *bv = ds.GetDataElement(tag).GetByteValue();
    if (!bv || !bv->GetPointer())
        return std::string();
    std::string s(bv->GetPointer(), bv->GetLength());
    size_t end = s.find_last_not_of(std::string(" \0", 2));
    s.erase(end == std::string::npos ? 0 : end + 1);
    size_t begin = s.find_first_not_of(' ');
    return begin == std::string::npos ? std::string() : s.substr(begin);
}

// Up to `count` backslash-separated decimal values into `out`; missing or
// unparsable ones become NaN. Returns how many parsed.
int numbers_of(const gdcm::DataSet &ds, uint16_t group, uint16_t element, double *out, int count)
{
    for (int i = 0; i < count; i++)
        out[i] = NAN;
    std::string s = text_of(ds, group, element);
    const char *p = s.c_str();
    int parsed = 0;
    for (int i = 0; i < count && *p; i++) {
        char *end = nullptr;
        double v = std::strtod(p, &end);
        if (end != p && std::isfinite(v)) {
            out[i] = v;
            parsed++;
        }
        const char *sep = std::strchr(p, '\\');
        if (!sep)
            break;
        p = sep + 1;
    }
    return parsed;
}

void copy_text(char *dst, size_t cap, const std::string &src)
{
    size_t n = src.size() < cap - 1 ? src.size() : cap - 1;
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

// A US attribute of the top-level data set as the file says it, or
// `fallback` when absent or malformed.
int32_t us_of(const gdcm::File &file, uint16_t element, int32_t fallback)
{
    const gdcm::DataSet &ds = file.GetDataSet();
    const gdcm::Tag tag(0x0028, element);
    const gdcm::ByteValue *bv = ds.FindDataElement(tag) ? ds.GetDataElement(tag).GetByteValue() : nullptr;
    if (!bv || bv->GetLength() != 2)
        return fallback;
    // GDCM has already put binary values of big-endian files in host order.
    uint16_t v;
    std::memcpy(&v, bv->GetPointer(), 2);
    return v;
}

// Bitmask values some CR devices write for BitsAllocated/Stored, read as
// GDCM reads them.
int32_t bits_value(int32_t v)
{
    return v == 0xFFFF ? 16 : v == 0x0FFF ? 12 : v == 0x00FF ? 8 : v;
}

// The image pixel attributes GDCM relies on (and asserts on): present,
// well formed and consistent, so that a corrupt value is an error here
// rather than an abort inside GDCM.
ich_status check_pixel_attributes(const gdcm::File &file, const char *path,
                                  const ich_dicom_limits &limits, ich_frame_shape *shape)
{
    const int32_t rows = us_of(file, 0x0010, -1), columns = us_of(file, 0x0011, -1);
    const int32_t allocated = bits_value(us_of(file, 0x0100, -1));
    const int32_t stored = bits_value(us_of(file, 0x0101, -1));
    const int32_t high_bit = us_of(file, 0x0102, -1);
    const int32_t samples = us_of(file, 0x0002, 1);
    const int32_t representation = us_of(file, 0x0103, 0);
    const int32_t planar = us_of(file, 0x0006, 0);
    if (rows <= 0 || columns <= 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: Rows/Columns (0028,0010/0011) missing or zero", path);
    if ((int64_t)rows * columns > (int64_t)ICH_DICOM_MAX_PIXELS)
        return ich_fail(ICH_ERR_FORMAT, "%s: absurd image size %d x %d", path, rows, columns);
    if (allocated < 1 || allocated > 64 || stored < 1 || stored > allocated || high_bit < 0 ||
        high_bit >= allocated)
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: inconsistent bits: %d allocated, %d stored, high bit %d", path,
                        allocated, stored, high_bit);
    if (representation != 0 && representation != 1)
        return ich_fail(ICH_ERR_FORMAT, "%s: invalid Pixel Representation %d", path,
                        representation);
    // The layouts GDCM decodes without failing an assertion (its RAW codec,
    // overlay clean-up and pixel format asserts, issue 12): 1, 8, 16 or 32
    // bits allocated; 1-bit data unsigned; 8- and 32-bit data using every
    // bit; the high bit just below the stored bits (every CT in practice).
    if (allocated != 1 && allocated != 8 && allocated != 16 && allocated != 32)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: unsupported bit layout: BitsAllocated (0028,0100) is %d; "
                        "1, 8, 16 or 32 are read",
                        path, allocated);
    if (high_bit != stored - 1 || (allocated == 32 && stored != 32) ||
        (allocated == 8 && stored != 8))
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: unsupported bit layout: %d allocated, %d stored, high bit %d", path,
                        allocated, stored, high_bit);
    if (allocated == 1 && representation != 0)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: unsupported bit layout: 1-bit pixels marked signed "
                        "(Pixel Representation 1)",
                        path);
    if (samples != 1 && samples != 3 && samples != 4)
        return ich_fail(ICH_ERR_FORMAT, "%s: invalid Samples per Pixel %d", path, samples);
    if (planar != 0 && planar != 1)
        return ich_fail(ICH_ERR_FORMAT, "%s: invalid Planar Configuration %d", path, planar);
    // The limits, before any codec allocates the image.
    double frames_value;
    const uint64_t frames =
        numbers_of(file.GetDataSet(), 0x0028, 0x0008, &frames_value, 1) == 1 && frames_value >= 1 &&
                frames_value < 4294967296.0
            ? (uint64_t)frames_value
            : 1;
    const uint64_t pixels = (uint64_t)rows * (uint64_t)columns * frames;
    if (pixels > limits.max_pixels)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: image of %d x %d x %llu frames is %llu pixels, more than the limit "
                        "max_pixels (%llu)",
                        path, rows, columns, (unsigned long long)frames,
                        (unsigned long long)pixels, (unsigned long long)limits.max_pixels);
    const uint64_t decoded = (pixels * (uint64_t)samples * (uint64_t)allocated + 7) / 8;
    if (decoded > limits.max_decoded_bytes)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: decoded pixel data would be %llu bytes, more than the limit "
                        "max_decoded_bytes (%llu)",
                        path, (unsigned long long)decoded,
                        (unsigned long long)limits.max_decoded_bytes);
    // Rejected before GDCM's codecs run: libich reads single grayscale slices.
    if (samples != 1)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: colour image (%d samples per pixel, %s); a grayscale slice is expected",
                        path, samples, text_of(file.GetDataSet(), 0x0028, 0x0004).c_str());
    const std::string photometric = text_of(file.GetDataSet(), 0x0028, 0x0004);
    if (photometric != "MONOCHROME1" && photometric != "MONOCHROME2")
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: photometric interpretation \"%s\"; a MONOCHROME1/2 slice is expected",
                        path, photometric.c_str());
    if (frames > 1)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: multi-frame image (%llu frames); a single slice is expected", path,
                        (unsigned long long)frames);
    *shape = ich_frame_shape{rows, columns, samples, allocated};
    return ICH_OK;
}

void fill_info(const gdcm::File &file, const gdcm::Image &img, ich_dicom_info *info)
{
    const gdcm::DataSet &ds = file.GetDataSet();
    const gdcm::PixelFormat &pf = img.GetPixelFormat();
    info->size = sizeof *info;
    info->columns = (int32_t)img.GetDimension(0);
    info->rows = (int32_t)img.GetDimension(1);
    info->bits_allocated = us_of(file, 0x0100, pf.GetBitsAllocated());
    info->bits_stored = us_of(file, 0x0101, pf.GetBitsStored());
    info->pixel_representation = us_of(file, 0x0103, pf.GetPixelRepresentation());

    double v[3];
    info->rescale_slope = numbers_of(ds, 0x0028, 0x1053, v, 1) == 1 && v[0] != 0 ? v[0] : 1.0;
    info->rescale_intercept = numbers_of(ds, 0x0028, 0x1052, v, 1) == 1 ? v[0] : 0.0;
    numbers_of(ds, 0x0028, 0x0030, info->pixel_spacing, 2);
    numbers_of(ds, 0x0018, 0x0050, &info->slice_thickness, 1);
    numbers_of(ds, 0x0020, 0x0032, info->image_position, 3);
    numbers_of(ds, 0x0028, 0x1050, &info->window_center, 1);
    numbers_of(ds, 0x0028, 0x1051, &info->window_width, 1);
    info->instance_number = numbers_of(ds, 0x0020, 0x0013, v, 1) == 1 ? (int32_t)v[0] : 0;

    copy_text(info->photometric, sizeof info->photometric, text_of(ds, 0x0028, 0x0004));
    info->monochrome1 = std::strcmp(info->photometric, "MONOCHROME1") == 0;
    copy_text(info->modality, sizeof info->modality, text_of(ds, 0x0008, 0x0060));
    const char *ts = gdcm::TransferSyntax::GetTSString(file.GetHeader().GetDataSetTransferSyntax());
    copy_text(info->transfer_syntax, sizeof info->transfer_syntax, ts ? ts : "");
    copy_text(info->sop_instance_uid, sizeof info->sop_instance_uid, text_of(ds, 0x0008, 0x0018));
    copy_text(info->series_instance_uid, sizeof info->series_instance_uid,
              text_of(ds, 0x0020, 0x000E));
    copy_text(info->study_instance_uid, sizeof info->study_instance_uid, text_of(ds, 0x0020, 0x000D));
    copy_text(info->patient_id, sizeof info->patient_id, text_of(ds, 0x0010, 0x0020));
}

ich_codec codec_of(const gdcm::TransferSyntax &ts)
{
    if (ts == gdcm::TransferSyntax::RLELossless)
        return ICH_CODEC_RLE;
    // as GDCM's Bitmap picks its codec
    if (gdcm::JPEG2000Codec().CanDecode(ts))
        return ICH_CODEC_JPEG2000;
    if (gdcm::JPEGCodec().CanDecode(ts) || gdcm::JPEGLSCodec().CanDecode(ts))
        return ICH_CODEC_JPEG;
    return ICH_CODEC_OTHER;
}

// GDCM's codecs trust a compressed stream's own header over the DICOM
// attributes they sized their buffers from (and assert on some corrupt
// ones): check the first frame's header before any codec sees it. The
// JPEG 2000 codec also walks all fragments joined (as it decodes them).
ich_status check_first_frame(const gdcm::File &file, const ich_frame_shape &shape, const char *path)
{
    const ich_codec codec = codec_of(file.GetHeader().GetDataSetTransferSyntax());
    const gdcm::DataElement &de = file.GetDataSet().GetDataElement(gdcm::Tag(0x7FE0, 0x0010));
    const gdcm::SequenceOfFragments *fragments = de.GetSequenceOfFragments();
    if (!fragments || fragments->GetNumberOfFragments() == 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: compressed pixel data has no fragments", path);
    const gdcm::ByteValue *bv = fragments->GetFragment(0).GetByteValue();
    if (!bv || !bv->GetPointer())
        return ich_fail(ICH_ERR_FORMAT, "%s: compressed pixel data has an empty fragment", path);
    ich_status st = ich_check_codestream(
        path, reinterpret_cast<const unsigned char *>(bv->GetPointer()),
        (size_t)(uint32_t)bv->GetLength(), &shape, codec);
    if (st != ICH_OK || codec != ICH_CODEC_JPEG2000 || fragments->GetNumberOfFragments() == 1)
        return st;
    std::vector<unsigned char> joined;
    for (size_t i = 0; i < fragments->GetNumberOfFragments(); i++) {
        const gdcm::ByteValue *part = fragments->GetFragment(i).GetByteValue();
        if (part && part->GetPointer())
            joined.insert(joined.end(), part->GetPointer(),
                          part->GetPointer() + (uint32_t)part->GetLength());
    }
    return ich_check_j2k_walk(path, joined.data(), joined.size());
}

// RescaleSlope and RescaleIntercept, when present and not empty: one
// finite decimal number of at most kMaxRescale in magnitude. Anything else
// is an error naming the tag, not an image of infinities (1e300 overflows
// float32) or an attribute dropped and taken as its default ("NaN").
const double kMaxRescale = 1e9;

ich_status check_rescale(const gdcm::DataSet &ds, const char *path)
{
    static const struct {
        uint16_t element;
        const char *name;
    } tags[] = {{0x1052, "RescaleIntercept"}, {0x1053, "RescaleSlope"}};
    for (const auto &t : tags) {
        const std::string text = text_of(ds, 0x0028, t.element);
        if (text.empty())
            continue;
        const char *p = text.c_str();
        char *end = nullptr;
        errno = 0;
        const double v = std::strtod(p, &end);
        while (end && *end == ' ')
            end++;
        const bool parsed = end != p && end && *end == '\0';
        if (!parsed || !std::isfinite(v) || std::fabs(v) > kMaxRescale)
            return ich_fail(ICH_ERR_FORMAT,
                            "%s: %s (0028,%04X) is \"%.40s\": %s", path, t.name, t.element,
                            text.c_str(),
                            !parsed ? "not a decimal number"
                            : !std::isfinite(v)
                                ? "not a finite number"
                                : "larger in magnitude than 1e9, an absurd modality rescale");
    }
    return ICH_OK;
}

// A JPEG-LS frame (all fragments of the single frame) must end with the EOI
// marker, after at most padding NULs: CharLS spends seconds of CPU on a
// truncated stream before it gives up (issue 12: 10 s for a 64 x 64 slice).
ich_status check_jpegls_complete(const gdcm::File &file, const char *path)
{
    const gdcm::DataElement &de = file.GetDataSet().GetDataElement(gdcm::Tag(0x7FE0, 0x0010));
    const gdcm::SequenceOfFragments *fragments = de.GetSequenceOfFragments();
    if (!fragments || fragments->GetNumberOfFragments() == 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: compressed pixel data has no fragments", path);
    const gdcm::ByteValue *bv =
        fragments->GetFragment(fragments->GetNumberOfFragments() - 1).GetByteValue();
    size_t n = bv && bv->GetPointer() ? (size_t)(uint32_t)bv->GetLength() : 0;
    const unsigned char *d = bv ? reinterpret_cast<const unsigned char *>(bv->GetPointer()) : nullptr;
    while (n > 0 && d[n - 1] == 0)
        n--;
    if (n < 2 || d[n - 2] != 0xFF || d[n - 1] != 0xD9)
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: truncated JPEG-LS stream: its last fragment does not end with the "
                        "EOI marker",
                        path);
    return ICH_OK;
}

// The attributes GDCM's image reading interprets, with the VR it asserts
// they have. `count` > 0: decimal strings that must hold that many numbers.
struct ImageAttribute {
    uint16_t group, element;
    gdcm::VR::VRType vr;
    bool required; // part of the pixel description: wrong means a bad file
    int count;
};

const ImageAttribute kImageAttributes[] = {
    {0x0028, 0x0002, gdcm::VR::US, true, 0},  {0x0028, 0x0004, gdcm::VR::CS, true, 0},
    {0x0028, 0x0006, gdcm::VR::US, true, 0},  {0x0028, 0x0008, gdcm::VR::IS, true, 0},
    {0x0028, 0x0010, gdcm::VR::US, true, 0},  {0x0028, 0x0011, gdcm::VR::US, true, 0},
    {0x0028, 0x0100, gdcm::VR::US, true, 0},  {0x0028, 0x0101, gdcm::VR::US, true, 0},
    {0x0028, 0x0102, gdcm::VR::US, true, 0},  {0x0028, 0x0103, gdcm::VR::US, true, 0},
    {0x0028, 0x0030, gdcm::VR::DS, false, 2}, {0x0028, 0x0034, gdcm::VR::IS, false, 0},
    {0x0028, 0x1050, gdcm::VR::DS, false, 0}, {0x0028, 0x1051, gdcm::VR::DS, false, 0},
    {0x0028, 0x1052, gdcm::VR::DS, false, 1}, {0x0028, 0x1053, gdcm::VR::DS, false, 1},
    {0x0028, 0x1054, gdcm::VR::LO, false, 0}, {0x0028, 0x0009, gdcm::VR::AT, false, 0},
    {0x0018, 0x0050, gdcm::VR::DS, false, 1}, {0x0018, 0x0088, gdcm::VR::DS, false, 1},
    {0x0018, 0x1164, gdcm::VR::DS, false, 2}, {0x0018, 0x2010, gdcm::VR::DS, false, 2},
    {0x0020, 0x0032, gdcm::VR::DS, false, 3}, {0x0020, 0x0037, gdcm::VR::DS, false, 6},
};

// GDCM asserts when an attribute it interprets has another VR than the
// standard's, or (for spacing, position and orientation) too few numbers.
// A malformed optional attribute is dropped (and reported as absent); a
// malformed pixel description makes the file malformed.
ich_status check_attribute_vrs(gdcm::DataSet &ds, const char *path)
{
    for (const ImageAttribute &a : kImageAttributes) {
        const gdcm::Tag tag(a.group, a.element);
        if (!ds.FindDataElement(tag))
            continue;
        const gdcm::VR vr = ds.GetDataElement(tag).GetVR();
        // Implicit VR files carry no VR, and UN defers to the dictionary:
        // GDCM takes the dictionary's VR for both.
        bool ok = vr == gdcm::VR::INVALID || vr == gdcm::VR::UN || vr == a.vr;
        double values[6];
        if (ok && a.count > 0)
            ok = numbers_of(ds, a.group, a.element, values, a.count) == a.count;
        if (ok)
            continue;
        if (a.required)
            return ich_fail(ICH_ERR_FORMAT, "%s: malformed image attribute (%04X,%04X)", path,
                            a.group, a.element);
        ds.Remove(tag);
    }
    // Overlay and curve groups (60xx, 50xx) are read by GDCM too, and are
    // nothing a slice's pixels depend on.
    std::vector<gdcm::Tag> extras;
    for (const gdcm::DataElement &de : ds.GetDES()) {
        const uint16_t group = de.GetTag().GetGroup();
        if ((group >= 0x6000 && group <= 0x60FF) || (group >= 0x5000 && group <= 0x50FF))
            extras.push_back(de.GetTag());
    }
    for (const gdcm::Tag &tag : extras)
        ds.Remove(tag);
    return ICH_OK;
}

// Installed GDCM is built with assertions: a few malformed but parseable
// files would abort the process inside ImageReader::Read(). This reader
// parses once, repairs or rejects what would trip those assertions, and
// only then builds the image, as PixmapReader::Read() does.
class CheckedImageReader : public gdcm::ImageReader
{
  public:
    ich_status ReadChecked(const char *path, const ich_dicom_limits &limits)
    {
        if (!gdcm::Reader::Read())
            return ich_fail(ICH_ERR_FORMAT,
                            "%s: not a DICOM file, or truncated before its data set ends", path);
        gdcm::DataSet &ds = GetFile().GetDataSet();
        if (!ds.FindDataElement(gdcm::Tag(0x7FE0, 0x0010)))
            return ich_fail(ICH_ERR_FORMAT, "%s: DICOM file has no pixel data", path);
        ich_frame_shape shape;
        ich_status st = check_pixel_attributes(GetFile(), path, limits, &shape);
        const gdcm::TransferSyntax &ts = GetFile().GetHeader().GetDataSetTransferSyntax();
        if (st == ICH_OK && ts.IsEncapsulated())
            st = check_first_frame(GetFile(), shape, path);
        if (st == ICH_OK && (ts == gdcm::TransferSyntax::JPEGLSLossless ||
                             ts == gdcm::TransferSyntax::JPEGLSNearLossless))
            st = check_jpegls_complete(GetFile(), path);
        if (st == ICH_OK)
            st = check_rescale(ds, path);
        if (st != ICH_OK)
            return st;
        // A single frame may omit Number of Frames; GDCM insists on it once
        // a Frame Increment Pointer is present (RT Dose). Say it is 1.
        if (!ds.FindDataElement(gdcm::Tag(0x0028, 0x0008))) {
            gdcm::DataElement frames(gdcm::Tag(0x0028, 0x0008));
            frames.SetVR(gdcm::VR::IS);
            frames.SetByteValue("1 ", 2);
            ds.Insert(frames);
        }
        ds.Remove(gdcm::Tag(0x0088, 0x0200)); // icon image: unused, and asserted on
        ds.Remove(gdcm::Tag(0x0008, 0x0010)); // ACR-NEMA recognition code: likewise
        // Functional groups describe frames of enhanced multi-frame objects;
        // a single slice does not need them, and GDCM asserts on malformed ones.
        ds.Remove(gdcm::Tag(0x5200, 0x9229));
        ds.Remove(gdcm::Tag(0x5200, 0x9230));
        ds.Remove(gdcm::Tag(0x3004, 0x000C)); // RT Dose frame offsets: likewise
        if ((st = check_attribute_vrs(ds, path)) != ICH_OK)
            return st;

        PixelData->SetTransferSyntax(ts);
        gdcm::MediaStorage ms;
        ms.SetFromFile(GetFile());
        if (!gdcm::MediaStorage::IsImage(ms))
            ms = gdcm::MediaStorage::SecondaryCaptureImageStorage;
        if (!ReadImage(ms))
            return ich_fail(ICH_ERR_FORMAT, "%s: DICOM image attributes are missing or inconsistent",
                            path);
        return ICH_OK;
    }
};

// Bytes the Pixel Data element declares when it is not encapsulated.
size_t native_pixel_bytes(const gdcm::File &file)
{
    const gdcm::DataElement &de = file.GetDataSet().GetDataElement(gdcm::Tag(0x7FE0, 0x0010));
    const gdcm::ByteValue *bv = de.GetByteValue();
    return bv ? (size_t)(uint32_t)bv->GetLength() : 0;
}

// GDCM swaps big-endian 32-bit samples as two 16-bit halves; put the
// halves back in order.
void fix_big_endian_32(ich_gdcm_image *image)
{
    uint32_t *v = static_cast<uint32_t *>(image->buffer);
    size_t n = image->buffer_size / 4;
    for (size_t i = 0; i < n; i++)
        v[i] = (v[i] << 16) | (v[i] >> 16);
}

// Debian's GDCM is built with assertions, and its reader aborts the
// process on malformed input (a file that ends inside an element, a bad
// VR, ...). So ich_dicom_check_framing() checks the bytes first, and only
// then does GDCM parse them, from memory.
ich_status read_image(const char *path, const void *data, size_t size,
                      const ich_dicom_limits &limits, ich_gdcm_image *image)
{
    ich_status st = ich_dicom_check_framing(path, static_cast<const unsigned char *>(data), size,
                                            limits.max_decoded_bytes);
    if (st != ICH_OK)
        return st;
    MemoryBuffer buffer(static_cast<const char *>(data), size);
    std::istream stream(&buffer);
    CheckedImageReader reader;
    reader.SetStream(stream);
    st = reader.ReadChecked(path, limits);
    if (st != ICH_OK)
        return st;
    const gdcm::Image &img = reader.GetImage();
    fill_info(reader.GetFile(), img, &image->info);
    const gdcm::PixelFormat &pf = img.GetPixelFormat();
    image->samples_per_pixel = pf.GetSamplesPerPixel();
    image->decoded_bits_allocated = pf.GetBitsAllocated();
    image->decoded_bits_stored = pf.GetBitsStored();
    image->decoded_pixel_representation = pf.GetPixelRepresentation();
    image->frames = img.GetNumberOfDimensions() >= 3 ? (int32_t)img.GetDimension(2) : 1;

    const ich_dicom_info &info = image->info;
    if (image->samples_per_pixel != 1)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: colour image (%d samples per pixel, %s); a grayscale slice is expected",
                        path, image->samples_per_pixel, info.photometric);
    if (image->frames != 1)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: multi-frame image (%d frames); a single slice is expected", path,
                        image->frames);
    if (info.rows <= 0 || info.columns <= 0 ||
        (int64_t)info.rows * info.columns > (int64_t)ICH_DICOM_MAX_PIXELS)
        return ich_fail(ICH_ERR_FORMAT, "%s: absurd image size %d x %d", path, info.rows,
                        info.columns);
    const int32_t bits = image->decoded_bits_allocated, stored = image->decoded_bits_stored;
    if (bits > 32 || stored < 1 || stored > bits)
        return ich_fail(ICH_ERR_UNSUPPORTED, "%s: unsupported pixel format: %d bits allocated, %d stored",
                        path, bits, stored);

    size_t expected = ((size_t)info.rows * info.columns * bits + 7) / 8;
    size_t length = img.GetBufferLength();
    const gdcm::TransferSyntax &ts = img.GetTransferSyntax();
    if (!ts.IsEncapsulated() && native_pixel_bytes(reader.GetFile()) < expected)
        return ich_fail(ICH_ERR_FORMAT, "%s: pixel data has %zu bytes, %zu expected for %d x %d x %d bits",
                        path, native_pixel_bytes(reader.GetFile()), expected, info.rows,
                        info.columns, bits);
    if (length < expected)
        return ich_fail(ICH_ERR_FORMAT, "%s: pixel data has %zu bytes, %zu expected", path, length,
                        expected);
    image->buffer = ich_block_alloc(length); /* kept for the next slice: core/blocks.h */
    if (!image->buffer)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes for pixel data", path,
                        length);
    image->buffer_size = length;
    if (!img.GetBuffer(static_cast<char *>(image->buffer)))
        return ich_fail(ICH_ERR_FORMAT, "%s: pixel data cannot be decoded (%s): truncated or corrupt",
                        path, info.transfer_syntax);
    if (ts.GetSwapCode() == gdcm::SwapCode::BigEndian && bits == 32)
        fix_big_endian_32(image);
    return ICH_OK;
}

void put_text(gdcm::DataSet &ds, uint16_t group, uint16_t element, gdcm::VR vr, std::string value)
{
    if (value.size() % 2)
        value.push_back(vr == gdcm::VR::UI ? '\0' : ' ');
    gdcm::DataElement de(gdcm::Tag(group, element));
    de.SetVR(vr);
    de.SetByteValue(value.data(), (uint32_t)value.size());
    ds.Replace(de);
}

std::string decimal(double v)
{
    // DS values hold at most 16 characters.
    char buf[32];
    for (int precision = 10; precision > 0; precision--) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strlen(buf) <= 16)
            break;
    }
    return buf;
}

ich_status encode_ct(const ich_ct_slice *slice, void **bytes, size_t *size)
{
    gdcm::ImageWriter writer;
    gdcm::Image &img = writer.GetImage();
    img.SetNumberOfDimensions(2);
    img.SetDimension(0, (unsigned int)slice->columns);
    img.SetDimension(1, (unsigned int)slice->rows);
    img.SetPixelFormat(gdcm::PixelFormat(gdcm::PixelFormat::INT16));
    img.SetPhotometricInterpretation(gdcm::PhotometricInterpretation::MONOCHROME2);
    img.SetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
    img.SetSlope(slice->rescale_slope);
    img.SetIntercept(slice->rescale_intercept);
    img.SetSpacing(0, slice->pixel_spacing[1]);
    img.SetSpacing(1, slice->pixel_spacing[0]);
    img.SetOrigin(0, slice->image_position[0]);
    img.SetOrigin(1, slice->image_position[1]);
    img.SetOrigin(2, slice->image_position[2]);
    const double cosines[6] = {1, 0, 0, 0, 1, 0};
    img.SetDirectionCosines(cosines);

    size_t pixel_bytes = (size_t)slice->rows * slice->columns * sizeof(int16_t);
    gdcm::DataElement pixeldata(gdcm::Tag(0x7FE0, 0x0010));
    pixeldata.SetVR(gdcm::VR::OW);
    pixeldata.SetByteValue(reinterpret_cast<const char *>(slice->pixels), (uint32_t)pixel_bytes);
    img.SetDataElement(pixeldata);

    gdcm::DataSet &ds = writer.GetFile().GetDataSet();
    put_text(ds, 0x0008, 0x0016, gdcm::VR::UI, "1.2.840.10008.5.1.4.1.1.2"); // CT Image Storage
    put_text(ds, 0x0008, 0x0018, gdcm::VR::UI, slice->sop_instance_uid);
    put_text(ds, 0x0008, 0x0060, gdcm::VR::CS, "CT");
    put_text(ds, 0x0010, 0x0010, gdcm::VR::PN, slice->patient_id);
    put_text(ds, 0x0010, 0x0020, gdcm::VR::LO, slice->patient_id);
    put_text(ds, 0x0020, 0x000D, gdcm::VR::UI, slice->study_instance_uid);
    put_text(ds, 0x0020, 0x000E, gdcm::VR::UI, slice->series_instance_uid);
    put_text(ds, 0x0020, 0x0013, gdcm::VR::IS, std::to_string(slice->instance_number));
    // Present but empty (allowed for these type 2 attributes): GDCM would
    // otherwise stamp the current time, and the same slice written twice
    // must give the same bytes.
    put_text(ds, 0x0008, 0x0020, gdcm::VR::DA, "");
    put_text(ds, 0x0008, 0x0030, gdcm::VR::TM, "");
    if (slice->slice_thickness > 0)
        put_text(ds, 0x0018, 0x0050, gdcm::VR::DS, decimal(slice->slice_thickness));
    if (slice->window_width > 0) {
        put_text(ds, 0x0028, 0x1050, gdcm::VR::DS, decimal(slice->window_center));
        put_text(ds, 0x0028, 0x1051, gdcm::VR::DS, decimal(slice->window_width));
    }

    std::ostringstream out;
    writer.SetStream(out);
    if (!writer.Write())
        return ich_fail(ICH_ERR_INTERNAL, "GDCM could not encode the CT slice");
    std::string data = out.str();
    *bytes = std::malloc(data.size());
    if (!*bytes)
        return ich_fail(ICH_ERR_NO_MEMORY, "cannot allocate %zu bytes for a DICOM file", data.size());
    std::memcpy(*bytes, data.data(), data.size());
    *size = data.size();
    return ICH_OK;
}

} // namespace

extern "C" ich_status ich_gdcm_decode(const char *name, const void *data, size_t size,
                                      const ich_dicom_limits *limits, ich_gdcm_image *image)
{
    const char *path = name;
    silence_gdcm();
    std::memset(image, 0, sizeof *image);
    ich_status st;
    ich_codec_messages_enter();
    try {
        st = read_image(path, data, size, *limits, image);
    } catch (const std::bad_alloc &) {
        st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory while decoding", path);
    } catch (const std::exception &e) {
        st = ich_fail(ICH_ERR_FORMAT, "%s: cannot decode DICOM: %s", path, e.what());
    } catch (...) {
        st = ich_fail(ICH_ERR_FORMAT, "%s: cannot decode DICOM", path);
    }
    ich_codec_messages_leave();
    if (st != ICH_OK) {
        ich_block_free(image->buffer);
        image->buffer = nullptr;
        image->buffer_size = 0;
    }
    return st;
}

extern "C" ich_status ich_gdcm_encode_ct(const ich_ct_slice *slice, void **bytes, size_t *size)
{
    silence_gdcm();
    *bytes = nullptr;
    *size = 0;
    try {
        return encode_ct(slice, bytes, size);
    } catch (const std::bad_alloc &) {
        return ich_fail(ICH_ERR_NO_MEMORY, "out of memory while encoding a CT slice");
    } catch (const std::exception &e) {
        return ich_fail(ICH_ERR_INTERNAL, "GDCM failed to encode a CT slice: %s", e.what());
    }
}
