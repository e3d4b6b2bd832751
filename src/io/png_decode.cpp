// decode_png (loom/io/png.hpp): the 8-bit, non-interlaced subset of PNG, for
// pictures sent to a served model. Chunks are walked with bounds and CRC
// checks, the IDAT stream is inflated with zlib into exactly the size the
// header implies, and the five row filters (none, sub, up, average, Paeth)
// are undone in place.
#include <zlib.h>

#include <cstdlib>
#include <cstring>

#include "loom/io/png.hpp"

namespace loom::io {

namespace {

constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr int64_t kMaxPixels = int64_t{1} << 24;

uint32_t get_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct Header {
  int64_t width = 0, height = 0;
  int channels = 0;
};

Header read_header(const uint8_t* d, const std::string& name) {
  Header h;
  h.width = get_u32(d);
  h.height = get_u32(d + 4);
  const int depth = d[8], colour = d[9], compression = d[10], filter = d[11], interlace = d[12];
  LOOM_CHECK(h.width > 0 && h.height > 0, name, ": PNG size ", h.width, "x", h.height, " is empty");
  LOOM_CHECK(h.width <= kMaxPixels && h.height <= kMaxPixels && h.width * h.height <= kMaxPixels, name,
             ": PNG of ", h.width, "x", h.height, " pixels is too large (at most ", kMaxPixels, " pixels)");
  LOOM_CHECK(colour != 3, name, ": palette PNGs (colour type 3) are not supported; use RGB, RGBA or gray");
  switch (colour) {
    case 0: h.channels = 1; break;
    case 2: h.channels = 3; break;
    case 4: h.channels = 2; break;
    case 6: h.channels = 4; break;
    default: LOOM_FAIL(name, ": invalid PNG colour type ", colour);
  }
  LOOM_CHECK(depth == 8, name, ": PNG bit depth ", depth, " is not supported (8 bits per sample only)");
  LOOM_CHECK(compression == 0, name, ": unknown PNG compression method ", compression);
  LOOM_CHECK(filter == 0, name, ": unknown PNG filter method ", filter);
  LOOM_CHECK(interlace == 0, name,
             interlace == 1 ? ": interlaced (Adam7) PNGs are not supported"
                            : ": unknown PNG interlace method " + std::to_string(interlace));
  return h;
}

// Inflates `z` into exactly `expected` bytes.
std::vector<uint8_t> inflate_exact(const std::vector<uint8_t>& z, size_t expected, const std::string& name) {
  std::vector<uint8_t> out(expected + 1);  // one spare byte to notice surplus data
  z_stream s{};
  LOOM_CHECK(inflateInit(&s) == Z_OK, name, ": zlib inflateInit failed");
  s.next_in = const_cast<Bytef*>(z.data());
  s.avail_in = static_cast<uInt>(z.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&s, Z_FINISH);
  const std::string message = s.msg ? s.msg : "";
  const size_t produced = out.size() - s.avail_out;
  inflateEnd(&s);
  LOOM_CHECK(rc == Z_STREAM_END || rc == Z_BUF_ERROR, name, ": corrupt PNG image data (zlib: ",
             message.empty() ? std::to_string(rc) : message, ")");
  LOOM_CHECK(produced <= expected, name, ": PNG image data is longer than its ", expected, " bytes of rows");
  LOOM_CHECK(rc == Z_STREAM_END && produced == expected, name, ": PNG image data is truncated (", produced,
             " of ", expected, " bytes)");
  out.resize(expected);
  return out;
}

uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return static_cast<uint8_t>(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

// Undoes the row filters of `raw` (rows of 1 filter byte + stride bytes) into `pixels`.
void unfilter(const std::vector<uint8_t>& raw, const Header& h, uint8_t* pixels, const std::string& name) {
  const size_t bpp = static_cast<size_t>(h.channels), stride = static_cast<size_t>(h.width) * bpp;
  for (int64_t y = 0; y < h.height; ++y) {
    const uint8_t* in = raw.data() + static_cast<size_t>(y) * (stride + 1);
    const int type = in[0];
    ++in;
    uint8_t* row = pixels + static_cast<size_t>(y) * stride;
    const uint8_t* up = y > 0 ? row - stride : nullptr;
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= bpp ? row[i - bpp] : 0, b = up ? up[i] : 0, c = up && i >= bpp ? up[i - bpp] : 0;
      int predictor = 0;
      switch (type) {
        case 0: predictor = 0; break;
        case 1: predictor = a; break;
        case 2: predictor = b; break;
        case 3: predictor = (a + b) / 2; break;
        case 4: predictor = paeth(a, b, c); break;
        default: LOOM_FAIL(name, ": unknown PNG filter type ", type, " on row ", y);
      }
      row[i] = static_cast<uint8_t>(in[i] + predictor);
    }
  }
}

}  // namespace

Tensor decode_png(const uint8_t* data, size_t size, const std::string& name) {
  LOOM_CHECK(data && size >= sizeof(kSignature) && std::memcmp(data, kSignature, sizeof(kSignature)) == 0, name,
             ": not a PNG file (no PNG signature)");
  size_t pos = sizeof(kSignature);
  Header header;
  bool have_header = false, have_end = false;
  std::vector<uint8_t> compressed;
  while (!have_end) {
    LOOM_CHECK(size - pos >= 12, name, ": PNG is truncated (no IEND chunk)");
    const uint32_t length = get_u32(data + pos);
    char type[5] = {0};
    std::memcpy(type, data + pos + 4, 4);
    LOOM_CHECK(length <= size - pos - 12, name, ": PNG chunk '", type, "' of ", length, " bytes is truncated");
    const uint8_t* body = data + pos + 8;
    const uint32_t crc = static_cast<uint32_t>(crc32(0, data + pos + 4, length + 4));
    LOOM_CHECK(crc == get_u32(body + length), name, ": PNG chunk '", type, "' has a bad CRC");
    const std::string t(type);
    LOOM_CHECK(have_header || t == "IHDR", name, ": PNG does not start with an IHDR chunk (found '", t, "')");
    if (t == "IHDR") {
      LOOM_CHECK(!have_header && length == 13, name, ": bad PNG IHDR chunk");
      header = read_header(body, name);
      have_header = true;
    } else if (t == "IDAT") {
      compressed.insert(compressed.end(), body, body + length);
    } else if (t == "IEND") {
      have_end = true;
    } else if (t != "PLTE") {
      // Ancillary chunks (lowercase first letter) are skipped; other critical ones are not understood.
      LOOM_CHECK(type[0] >= 'a' && type[0] <= 'z', name, ": unsupported critical PNG chunk '", t, "'");
    }
    pos += 12 + static_cast<size_t>(length);
  }
  LOOM_CHECK(!compressed.empty(), name, ": PNG has no IDAT chunk");
  const size_t stride = static_cast<size_t>(header.width) * static_cast<size_t>(header.channels);
  const auto raw = inflate_exact(compressed, static_cast<size_t>(header.height) * (stride + 1), name);
  Tensor pixels = empty({header.height, header.width, header.channels}, DType::u8);
  unfilter(raw, header, pixels.data<uint8_t>(), name);
  return pixels;
}

}  // namespace loom::io
