#include "loom/io/png.hpp"

#include <zlib.h>

#include "loom/io/atomic_file.hpp"

namespace loom::io {

namespace {

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

// length, type, data, CRC of type + data
void put_chunk(std::vector<uint8_t>& out, const char type[4], const std::vector<uint8_t>& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put_u32(out, static_cast<uint32_t>(crc32(0, out.data() + start, static_cast<uInt>(out.size() - start))));
}

}  // namespace

std::vector<uint8_t> encode_png(const Tensor& pixels) {
  LOOM_CHECK(pixels.defined() && pixels.dtype() == DType::u8 &&
                 (pixels.dim() == 2 || (pixels.dim() == 3 && pixels.size(2) == 3)),
             "write_png: pixels must be u8 [H, W, 3] or [H, W]");
  const Tensor p = pixels.contiguous();
  const int64_t h = p.size(0), w = p.size(1), channels = p.dim() == 3 ? 3 : 1;
  LOOM_CHECK(h > 0 && w > 0, "write_png: empty picture");
  std::vector<uint8_t> raw;  // each row: filter byte 0, then the pixels
  raw.reserve(static_cast<size_t>(h * (w * channels + 1)));
  for (int64_t y = 0; y < h; ++y) {
    raw.push_back(0);
    const uint8_t* row = p.data<uint8_t>() + y * w * channels;
    raw.insert(raw.end(), row, row + w * channels);
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> deflated(size);
  LOOM_CHECK(compress2(deflated.data(), &size, raw.data(), static_cast<uLong>(raw.size()), 6) == Z_OK,
             "write_png: zlib compression failed");
  deflated.resize(size);

  std::vector<uint8_t> out{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> header;
  put_u32(header, static_cast<uint32_t>(w));
  put_u32(header, static_cast<uint32_t>(h));
  header.insert(header.end(), {8, static_cast<uint8_t>(channels == 3 ? 2 : 0), 0, 0, 0});  // depth, colour type
  put_chunk(out, "IHDR", header);
  put_chunk(out, "IDAT", deflated);
  put_chunk(out, "IEND", {});
  return out;
}

void write_png(const std::string& path, const Tensor& pixels) {
  const auto bytes = encode_png(pixels);
  atomic_write_file(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace loom::io
