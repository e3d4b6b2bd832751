#include <catch2/catch.hpp>

#include <zlib.h>

#include <loom/io/png.hpp>
#include <loom/ops/creation.hpp>

using namespace loom;

namespace {
uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
}  // namespace

TEST_CASE("PNG files decode back to the pixels, with valid chunk CRCs", "[io]") {
  const int64_t h = 5, w = 7;
  Tensor rgb = empty({h, w, 3}, DType::u8);
  for (int64_t i = 0; i < h * w * 3; ++i) rgb.data<uint8_t>()[i] = static_cast<uint8_t>(i * 37 % 251);
  const auto png = io::encode_png(rgb);
  REQUIRE(png.size() > 8 + 25 + 12 + 12);
  CHECK(std::vector<uint8_t>(png.begin(), png.begin() + 8) ==
        std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
  // walk the chunks: IHDR, IDAT, IEND, each with a correct CRC
  size_t at = 8;
  std::vector<std::string> types;
  std::vector<uint8_t> idat;
  while (at + 12 <= png.size()) {
    const uint32_t len = be32(&png[at]);
    const std::string type(png.begin() + at + 4, png.begin() + at + 8);
    types.push_back(type);
    CHECK(be32(&png[at + 8 + len]) == crc32(0, &png[at + 4], len + 4));
    if (type == "IHDR") {
      CHECK(be32(&png[at + 8]) == w);
      CHECK(be32(&png[at + 12]) == h);
      CHECK(png[at + 16] == 8);  // bit depth
      CHECK(png[at + 17] == 2);  // RGB
    }
    if (type == "IDAT") idat.assign(png.begin() + at + 8, png.begin() + at + 8 + len);
    at += 12 + len;
  }
  CHECK(types == std::vector<std::string>{"IHDR", "IDAT", "IEND"});
  std::vector<uint8_t> raw(static_cast<size_t>(h * (w * 3 + 1)));
  uLongf size = raw.size();
  REQUIRE(uncompress(raw.data(), &size, idat.data(), idat.size()) == Z_OK);
  REQUIRE(size == raw.size());
  for (int64_t y = 0; y < h; ++y) {
    CHECK(raw[y * (w * 3 + 1)] == 0);  // filter: none
    for (int64_t x = 0; x < w * 3; ++x) CHECK(raw[y * (w * 3 + 1) + 1 + x] == rgb.data<uint8_t>()[y * w * 3 + x]);
  }
  CHECK_THROWS_WITH(io::encode_png(zeros({2, 2, 4}, DType::u8)), Catch::Contains("u8 [H, W, 3] or [H, W]"));
}
