// io::decode_png: the five row filters, every 8-bit colour type, split IDAT
// chunks, a round trip through io::encode_png, and a named error for each
// kind of broken or unsupported file.
#include <catch2/catch.hpp>

#include <loom/io/png.hpp>
#include <loom/loom.hpp>

#include "../support/png_writer.hpp"

using namespace loom;
using Catch::Contains;

namespace {

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

Tensor decode(const std::vector<uint8_t>& png) { return io::decode_png(png.data(), png.size(), "test.png"); }

std::vector<uint8_t> bytes_of(const Tensor& t) { return t.contiguous().to_vector<uint8_t>(); }

}  // namespace

TEST_CASE("decode_png undoes all five filters for every 8-bit colour type", "[png]") {
  for (const int colour : {0, 2, 4, 6}) {
    for (const int filter : {0, 1, 2, 3, 4}) {
      INFO("colour type " << colour << ", filter " << filter);
      test::TestPng p;
      p.width = 13;
      p.height = 7;
      p.colour_type = colour;
      p.filters = {filter};
      const int channels = test::png_channels(colour);
      const auto pixels = pattern(p.width * p.height * static_cast<size_t>(channels), static_cast<uint32_t>(colour * 5 + filter));
      const Tensor t = decode(test::write_test_png(p, pixels));
      CHECK(t.dtype() == DType::u8);
      CHECK(t.shape() == Shape{7, 13, channels});
      CHECK(bytes_of(t) == pixels);
    }
  }
}

TEST_CASE("decode_png reads mixed row filters split over many IDAT chunks", "[png]") {
  test::TestPng p;
  p.width = 64;
  p.height = 64;
  p.colour_type = 2;
  p.filters = {4, 0, 3, 1, 2};
  p.idat_chunk = 7;
  const auto pixels = pattern(64 * 64 * 3, 9);
  CHECK(bytes_of(decode(test::write_test_png(p, pixels))) == pixels);
}

TEST_CASE("decode_png reads what encode_png writes", "[png]") {
  Generator gen(3);
  const Tensor rgb = randint(0, 256, {5, 9, 3}, DType::u8, &gen);
  const Tensor gray = randint(0, 256, {4, 6}, DType::u8, &gen);
  const Tensor back_rgb = decode(io::encode_png(rgb));
  CHECK(back_rgb.shape() == Shape{5, 9, 3});
  CHECK(bytes_of(back_rgb) == bytes_of(rgb));
  const Tensor back_gray = decode(io::encode_png(gray));
  CHECK(back_gray.shape() == Shape{4, 6, 1});
  CHECK(bytes_of(back_gray) == bytes_of(gray));
}

TEST_CASE("decode_png names what is broken or unsupported", "[png]") {
  test::TestPng p;
  p.width = 4;
  p.height = 3;
  const auto pixels = pattern(4 * 3 * 3, 1);
  const auto good = test::write_test_png(p, pixels);
  CHECK(bytes_of(decode(good)) == pixels);

  CHECK_THROWS_WITH(decode({'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0}), Contains("test.png") && Contains("not a PNG"));
  CHECK_THROWS_WITH(decode({}), Contains("not a PNG"));

  auto bad_crc = good;
  bad_crc[8 + 8 + 3] ^= 1;  // a byte of IHDR's data
  CHECK_THROWS_WITH(decode(bad_crc), Contains("chunk 'IHDR' has a bad CRC"));

  const std::vector<uint8_t> truncated(good.begin(), good.end() - 20);
  CHECK_THROWS_WITH(decode(truncated), Contains("truncated"));

  test::TestPng palette = p;
  palette.colour_type = 3;
  CHECK_THROWS_WITH(decode(test::write_test_png(palette, pattern(12, 2))), Contains("palette"));
  test::TestPng deep = p;
  deep.bit_depth = 16;
  CHECK_THROWS_WITH(decode(test::write_test_png(deep, pixels)), Contains("bit depth 16 is not supported"));
  test::TestPng interlaced = p;
  interlaced.interlace = 1;
  CHECK_THROWS_WITH(decode(test::write_test_png(interlaced, pixels)), Contains("interlaced (Adam7)"));
  test::TestPng unknown_filter = p;
  unknown_filter.filters = {5};
  CHECK_THROWS_WITH(decode(test::write_test_png(unknown_filter, pixels)), Contains("unknown PNG filter type 5"));

  // Rows for a smaller picture than the header says: the data runs short.
  test::TestPng small = p;
  small.height = 2;
  auto short_data = test::write_test_png(small, pixels);
  short_data[8 + 8 + 7] = 3;  // IHDR height 2 -> 3, CRC fixed below
  const uint32_t crc = static_cast<uint32_t>(crc32(0, short_data.data() + 12, 17));
  for (int i = 0; i < 4; ++i) short_data[29 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  CHECK_THROWS_WITH(decode(short_data), Contains("image data is truncated"));
}
