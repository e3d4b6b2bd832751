#include "loom/data/idx.hpp"

#include <zlib.h>

#include <cstring>
#include <memory>
#include <vector>

namespace loom::data {

namespace {

std::vector<unsigned char> read_all(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  LOOM_CHECK(f != nullptr, "read_idx: cannot open '", path, "': ", std::strerror(errno));
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(f, gzclose);
  std::vector<unsigned char> bytes;
  unsigned char buffer[1 << 16];
  while (true) {
    const int n = gzread(f, buffer, sizeof buffer);
    if (n < 0) {
      int err = 0;
      LOOM_FAIL("read_idx: '", path, "' is corrupt: ", gzerror(f, &err));
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), buffer, buffer + n);
  }
  return bytes;
}

uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

Tensor read_idx(const std::string& path) {
  const auto bytes = read_all(path);
  LOOM_CHECK(bytes.size() >= 4, "read_idx: '", path, "' is too short for an IDX header (", bytes.size(), " bytes)");
  LOOM_CHECK(bytes[0] == 0 && bytes[1] == 0, "read_idx: '", path, "' does not start with the IDX magic 0x0000");
  const int type = bytes[2], ndim = bytes[3];
  DType dtype;
  size_t elem = 0;
  switch (type) {
    case 0x08: dtype = DType::u8; elem = 1; break;
    case 0x0C: dtype = DType::i32; elem = 4; break;
    case 0x0D: dtype = DType::f32; elem = 4; break;
    default: LOOM_FAIL("read_idx: '", path, "' has unsupported element type 0x", std::hex, type);
  }
  LOOM_CHECK(ndim >= 1 && bytes.size() >= 4 + 4 * static_cast<size_t>(ndim), "read_idx: '", path,
             "' has a truncated header (", ndim, " dims)");
  Shape shape;
  for (int d = 0; d < ndim; ++d) shape.push_back(big_endian_u32(bytes.data() + 4 + 4 * d));
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  const size_t expected = static_cast<size_t>(numel(shape)) * elem;
  LOOM_CHECK(bytes.size() - header == expected, "read_idx: '", path, "' holds ", bytes.size() - header,
             " data bytes but its header ", shape_str(shape), " needs ", expected);
  Tensor t = empty(shape, dtype);
  auto* out = static_cast<unsigned char*>(t.raw_data());
  if (elem == 1) {
    std::memcpy(out, bytes.data() + header, expected);
  } else {  // big-endian 32-bit elements
    for (size_t i = 0; i < expected; i += 4) {
      const uint32_t v = big_endian_u32(bytes.data() + header + i);
      std::memcpy(out + i, &v, 4);
    }
  }
  return t;
}

}  // namespace loom::data
