// A PNG writer for tests: any 8-bit colour type, a chosen filter per row,
// IDAT split into chunks, and header fields the decoder must refuse (bit
// depth, interlacing), so tests can build files that loom's own encoder
// (RGB or gray, filter 0) never writes. Test-only: it trusts its arguments.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace loom::test {

struct TestPng {
  uint32_t width = 0, height = 0;
  int colour_type = 2;       // 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
  int bit_depth = 8;
  int interlace = 0;
  std::vector<int> filters;  // per row (cycled); empty: 0
  size_t idat_chunk = 0;     // split IDAT into chunks of this many bytes (0: one chunk)
};

inline int png_channels(int colour_type) {
  return colour_type == 0 ? 1 : colour_type == 2 ? 3 : colour_type == 4 ? 2 : colour_type == 6 ? 4 : 1;
}

inline void png_put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

inline void png_put_chunk(std::vector<uint8_t>& out, const std::string& type, const uint8_t* data, size_t n) {
  png_put_u32(out, static_cast<uint32_t>(n));
  const size_t start = out.size();
  out.insert(out.end(), type.begin(), type.end());
  out.insert(out.end(), data, data + n);
  png_put_u32(out, static_cast<uint32_t>(crc32(0, out.data() + start, static_cast<uInt>(out.size() - start))));
}

// `pixels`: height rows of width * channels bytes.
inline std::vector<uint8_t> write_test_png(const TestPng& p, const std::vector<uint8_t>& pixels) {
  const size_t bpp = static_cast<size_t>(png_channels(p.colour_type)), stride = p.width * bpp;
  std::vector<uint8_t> raw;
  for (uint32_t y = 0; y < p.height; ++y) {
    const int f = p.filters.empty() ? 0 : p.filters[y % p.filters.size()];
    raw.push_back(static_cast<uint8_t>(f));
    const uint8_t* row = pixels.data() + y * stride;
    const uint8_t* up = y > 0 ? row - stride : nullptr;
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= bpp ? row[i - bpp] : 0, b = up ? up[i] : 0, c = up && i >= bpp ? up[i - bpp] : 0;
      int pred = 0;
      if (f == 1) pred = a;
      if (f == 2) pred = b;
      if (f == 3) pred = (a + b) / 2;
      if (f == 4) {
        const int q = a + b - c, pa = std::abs(q - a), pb = std::abs(q - b), pc = std::abs(q - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      raw.push_back(static_cast<uint8_t>(row[i] - pred));
    }
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> z(size);
  compress2(z.data(), &size, raw.data(), static_cast<uLong>(raw.size()), 9);
  z.resize(size);

  std::vector<uint8_t> out{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> header;
  png_put_u32(header, p.width);
  png_put_u32(header, p.height);
  header.insert(header.end(), {static_cast<uint8_t>(p.bit_depth), static_cast<uint8_t>(p.colour_type), 0, 0,
                               static_cast<uint8_t>(p.interlace)});
  png_put_chunk(out, "IHDR", header.data(), header.size());
  const uint8_t text[] = "Comment\0test";
  png_put_chunk(out, "tEXt", text, sizeof text - 1);  // an ancillary chunk to skip
  const size_t step = p.idat_chunk ? p.idat_chunk : z.size();
  for (size_t i = 0; i < z.size(); i += step) png_put_chunk(out, "IDAT", z.data() + i, std::min(step, z.size() - i));
  png_put_chunk(out, "IEND", nullptr, 0);
  return out;
}

}  // namespace loom::test
