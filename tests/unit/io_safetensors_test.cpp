// safetensors: round trips of every dtype and layout, and every rule the
// reader enforces on untrusted files, each checked by its message.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <loom/io/safetensors.hpp>
#include <loom/loom.hpp>
#include <random>
#include <string>

using namespace loom;
using namespace loom::io;
using Catch::Contains;

namespace {

namespace fs = std::filesystem;

using loom::testing::TempDir;

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * itemsize(c.dtype()));
}

void check_same(const Tensor& a, const Tensor& b) {
  CHECK(a.dtype() == b.dtype());
  CHECK(a.shape() == b.shape());
  CHECK(bytes_of(a) == bytes_of(b));
}

// One tensor of every dtype, with values that exercise each type's range.
NamedTensors every_dtype() {
  Generator gen(7);
  NamedTensors out;
  out.emplace_back("f32", randn({3, 4}, {}, &gen));
  out.emplace_back("f64", randn({5}, DType::f64, &gen));
  out.emplace_back("bf16", randn({2, 3}, {}, &gen).to(DType::bf16));
  out.emplace_back("f16", randn({2, 2, 2}, {}, &gen).to(DType::f16));
  out.emplace_back("i32", from_vector<int32_t>({INT32_MIN, -1, 0, 1, INT32_MAX}, {5}));
  out.emplace_back("i64", from_vector<int64_t>({INT64_MIN, -1, 0, INT64_MAX}, {2, 2}));
  out.emplace_back("u8", arange(0, 256, 1, DType::u8).view({16, 16}));
  out.emplace_back("bool", from_vector<float>({1, 0, 0, 1, 1, 1}, {2, 3}).to(DType::boolean));
  return out;
}

std::string serialize(const NamedTensors& tensors, const Metadata& metadata = {}) {
  std::string out;
  write_safetensors([&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }, tensors, metadata);
  return out;
}

SafetensorsContents parse(const std::string& bytes, const std::string& name = "mem.safetensors") {
  return parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
}

// A file from a header text and a data block (no padding added).
std::string craft(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

std::string craft_len(uint64_t n, const std::string& rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + rest;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

TEST_CASE("safetensors round trips every dtype through a file", "[io][safetensors]") {
  TempDir dir;
  const NamedTensors tensors = every_dtype();
  const Metadata metadata = {{"format", "pt"}, {"producer", "loom"}};
  const std::string path = dir.file("all.safetensors");
  save_safetensors(path, tensors, metadata);

  const NamedTensors back = load_safetensors(path);
  REQUIRE(back.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    INFO(tensors[i].first);
    CHECK(back[i].first == tensors[i].first);  // file order = the order written
    check_same(back[i].second, tensors[i].second);
  }
  CHECK(safetensors_metadata(path) == metadata);

  // The in-memory parser sees the same file.
  const std::string bytes = serialize(tensors, metadata);
  std::ifstream in(path, std::ios::binary);
  const std::string on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(on_disk == bytes);
  const SafetensorsContents parsed = parse(bytes);
  REQUIRE(parsed.tensors.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) check_same(parsed.tensors[i].second, tensors[i].second);
  CHECK(parsed.metadata == metadata);

  // No temporary file is left behind.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("safetensors layout: 8-byte aligned header of spaces, little-endian data", "[io][safetensors]") {
  const std::string bytes = serialize({{"x", from_vector<int32_t>({1, 0x01020304}, {2})}});
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  REQUIRE(8 + n + 8 == bytes.size());
  CHECK(n % 8 == 0);
  CHECK(bytes[8] == '{');
  const std::string header = bytes.substr(8, n);
  CHECK(header.find_last_not_of(' ') == header.rfind('}'));
  CHECK(header.find("\"dtype\":\"I32\"") != std::string::npos);
  CHECK(header.find("\"data_offsets\":[0,8]") != std::string::npos);
  CHECK(bytes.substr(8 + n) == std::string("\x01\0\0\0\x04\x03\x02\x01", 8));
}

TEST_CASE("safetensors writes views contiguous, and 0-d and empty tensors", "[io][safetensors]") {
  TempDir dir;
  Tensor base = arange(0, 24, 1, DType::f32).view({2, 3, 4});
  NamedTensors tensors = {
      {"transposed", base.transpose(0, 2)},
      {"strided", base.slice(2, 0, 4, 2)},
      {"narrowed", base.narrow(1, 1, 2)},
      {"expanded", from_vector<int64_t>({5, 6}, {2, 1}).expand({2, 3})},
      {"bf16_view", base.to(DType::bf16).permute({1, 0, 2})},
      {"scalar", scalar_tensor(3.5, DType::f64)},
      {"empty", zeros({0, 3})},
      {"empty_mid", zeros({3, 0, 2}, DType::i32)},
      {"empty_1d", zeros({0}, DType::boolean)},
  };
  REQUIRE_FALSE(tensors[0].second.is_contiguous());
  const std::string path = dir.file("views.safetensors");
  save_safetensors(path, tensors);
  const NamedTensors back = load_safetensors(path);
  REQUIRE(back.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    INFO(tensors[i].first);
    CHECK(back[i].first == tensors[i].first);
    if (back[i].second.numel() > 0) CHECK(back[i].second.is_contiguous());
    check_same(back[i].second, tensors[i].second);
  }
  CHECK(back[0].second.to_vector<float>() == tensors[0].second.to_vector<float>());
  CHECK(back[5].second.dim() == 0);
  CHECK(back[5].second.item<double>() == 3.5);

  // No tensors at all is a valid file too.
  save_safetensors(path, {});
  CHECK(load_safetensors(path).empty());
}

TEST_CASE("safetensors writer refuses bad names and tensors", "[io][safetensors]") {
  CHECK_THROWS_WITH(serialize({{"a", ones({1})}, {"a", ones({2})}}), Contains("\"a\" is given twice"));
  CHECK_THROWS_WITH(serialize({{"__metadata__", ones({1})}}), Contains("reserved"));
  CHECK_THROWS_WITH(serialize({{"u", Tensor()}}), Contains("\"u\" is undefined"));
  CHECK_THROWS_WITH(serialize({{"bad\xff", ones({1})}}), Contains("not valid UTF-8"));
  TempDir dir;
  CHECK_THROWS_AS(save_safetensors(dir.file("x.safetensors"), {{"u", Tensor()}}), Error);
  CHECK_FALSE(fs::exists(dir.file("x.safetensors")));
  CHECK(fs::is_empty(dir.path));  // the temporary file was removed
}

TEST_CASE("safetensors reader: the file and the header length", "[io][safetensors][errors]") {
  CHECK_THROWS_WITH(parse(""), Contains("mem.safetensors") && Contains("0 bytes, too short"));
  CHECK_THROWS_WITH(parse("1234567"), Contains("7 bytes, too short"));
  CHECK_THROWS_WITH(parse(craft_len(100, "{}")), Contains("header length 100 is larger than the rest of the file (2"));
  CHECK_THROWS_WITH(parse(craft_len(200'000'000, "{}")), Contains("exceeds the cap of 100000000"));
  CHECK_THROWS_WITH(parse(craft_len(UINT64_MAX, "{}")), Contains("exceeds the cap"));
  CHECK(parse(craft("{}", "")).tensors.empty());
  CHECK(parse(craft("  {}  ", "")).tensors.empty());

  TempDir dir;
  const std::string path = dir.file("short.safetensors");
  write_file(path, "abc");
  CHECK_THROWS_WITH(load_safetensors(path), Contains(path) && Contains("too short"));
  write_file(path, craft_len(1000, "{}"));
  CHECK_THROWS_WITH(load_safetensors(path), Contains(path) && Contains("larger than the rest of the file"));
  CHECK_THROWS_WITH(safetensors_metadata(path), Contains(path) && Contains("larger than the rest of the file"));
  CHECK_THROWS_WITH(load_safetensors(dir.file("missing.safetensors")), Contains("missing.safetensors") && Contains("cannot open"));
  CHECK_THROWS_WITH(load_safetensors(dir.path.string()), Contains("not a regular file"));
}

TEST_CASE("safetensors reader: header JSON and entry structure", "[io][safetensors][errors]") {
  const std::string f4(4, '\0');
  CHECK_THROWS_WITH(parse(craft("{\"a\":", "")), Contains("mem.safetensors") && Contains("not valid JSON"));
  CHECK_THROWS_WITH(parse(craft("{\"a\xff\":1}", "")), Contains("not valid JSON"));
  CHECK_THROWS_WITH(parse(craft("[1,2]", "")), Contains("header is array") && Contains("must be a JSON object"));
  CHECK_THROWS_WITH(parse(craft("{} x", "")), Contains("not valid JSON"));
  CHECK_THROWS_WITH(parse(craft("{\"a\":3}", "")), Contains("tensor \"a\" is an integer"));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","shape":[1]}})", f4)),
                    Contains("tensor \"a\" has no \"data_offsets\""));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", f4)), Contains("has no \"dtype\""));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", f4)), Contains("has no \"shape\""));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", f4)),
                    Contains("unknown key \"x\""));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":5,"shape":[1],"data_offsets":[0,4]}})", f4)),
                    Contains("\"dtype\" is an integer"));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", f4)),
                    Contains("\"shape\" is string"));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", f4)),
                    Contains("\"data_offsets\" is [4] (must be [begin, end])"));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":{"b":0}}})", f4)),
                    Contains("must be [begin, end]"));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})", f4)),
                    Contains("\"data_offsets\"[1] is string"));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,4]}})", f4)),
                    Contains("\"data_offsets\"[0] is -4"));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{}})", f4)),
                    Contains("key \"a\" appears twice"));
  CHECK_THROWS_WITH(parse(craft(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f4)),
                    Contains("key \"dtype\" appears twice"));
}

TEST_CASE("safetensors reader: dtypes, shapes and sizes", "[io][safetensors][errors]") {
  const std::string f4(4, '\0');
  auto one = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return R"({"t":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
  };
  CHECK_THROWS_WITH(parse(craft(one("I8", "[4]", "[0,4]"), f4)), Contains("unsupported dtype \"I8\""));
  CHECK_THROWS_WITH(parse(craft(one("f32", "[1]", "[0,4]"), f4)), Contains("unsupported dtype \"f32\""));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[-1]", "[0,4]"), f4)), Contains("\"shape\"[0] is -1"));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[1, 1.5]", "[0,4]"), f4)), Contains("\"shape\"[1] is 1.5"));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[true]", "[0,4]"), f4)), Contains("\"shape\"[0] is boolean"));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[4294967296, 4294967296]", "[0,4]"), f4)),
                    Contains("too many elements"));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[18446744073709551615]", "[0,4]"), f4)), Contains("too many elements"));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[4611686018427387904]", "[0,4]"), f4)),  // 2^62 elements, 2^64 bytes
                    Contains("too large in bytes"));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[2]", "[0,4]"), f4)),
                    Contains("tensor \"t\"") && Contains("hold 4 bytes but \"shape\" [2] of F32 needs 8"));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[1]", "[4,0]"), f4)), Contains("[4, 0] has begin > end"));
  CHECK_THROWS_WITH(parse(craft(one("F32", "[2]", "[0,8]"), f4)), Contains("run past the data block (4 bytes)"));
  // A hostile size is refused before anything is allocated.
  CHECK_THROWS_WITH(parse(craft(one("F64", "[1099511627776]", "[0,8796093022208]"), f4)),
                    Contains("run past the data block"));
  // A zero dim makes an empty tensor, however large the others are.
  const auto z = parse(craft(one("F32", "[4611686018427387904, 0]", "[0,0]"), ""));
  CHECK(z.tensors.at(0).second.numel() == 0);
  CHECK(parse(craft(one("F32", "[]", "[0,4]"), f4)).tensors.at(0).second.dim() == 0);
}

TEST_CASE("safetensors reader: the tensors must tile the data block", "[io][safetensors][errors]") {
  const std::string d12(12, '\0');
  auto two = [](const std::string& a, const std::string& b) {
    return R"({"a":{"dtype":"F32","shape":[2],"data_offsets":)" + a + R"(},"b":{"dtype":"F32","shape":[1],"data_offsets":)" +
           b + "}}";
  };
  CHECK(parse(craft(two("[0,8]", "[8,12]"), d12)).tensors.size() == 2);
  CHECK(parse(craft(two("[4,12]", "[0,4]"), d12)).tensors.at(0).first == "b");  // file order
  CHECK_THROWS_WITH(parse(craft(two("[0,8]", "[4,8]"), d12)), Contains("tensor \"b\" [4, 8) overlaps tensor \"a\" [0, 8)"));
  CHECK_THROWS_WITH(parse(craft(two("[0,8]", "[0,4]"), d12)), Contains("overlaps"));
  CHECK_THROWS_WITH(parse(craft(two("[0,8]", "[6,10]"), d12)), Contains("tensor \"b\" [6, 10) overlaps"));
  CHECK_THROWS_WITH(parse(craft(two("[0,8]", "[12,16]"), d12 + "    ")),
                    Contains("bytes [8, 12) of the data block belong to no tensor (before tensor \"b\")"));
  CHECK_THROWS_WITH(parse(craft(two("[0,8]", "[8,12]"), d12 + "xy")),
                    Contains("bytes [12, 14) at the end of the data block belong to no tensor"));
  CHECK_THROWS_WITH(parse(craft("{}", "x")), Contains("bytes [0, 1) at the end"));
}

TEST_CASE("safetensors reader: metadata and BOOL values", "[io][safetensors][errors]") {
  CHECK(parse(craft(R"({"__metadata__":{"k":"v"}})", "")).metadata == Metadata{{"k", "v"}});
  CHECK_THROWS_WITH(parse(craft(R"({"__metadata__":{"k":1}})", "")),
                    Contains("\"__metadata__\".\"k\" is an integer (must be a string)"));
  CHECK_THROWS_WITH(parse(craft(R"({"__metadata__":[]})", "")), Contains("\"__metadata__\" is array"));
  const std::string header = R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})";
  CHECK(parse(craft(header, std::string("\x01\x00\x01", 3))).tensors.at(0).second.to_vector<bool>() ==
        std::vector<bool>{true, false, true});
  CHECK_THROWS_WITH(parse(craft(header, std::string("\x01\x00\x02", 3))),
                    Contains("tensor \"m\" (BOOL) has the byte 2 at element 2"));
  TempDir dir;
  write_file(dir.file("b.safetensors"), craft(header, std::string("\x01\x00\x07", 3)));
  CHECK_THROWS_WITH(load_safetensors(dir.file("b.safetensors")), Contains("b.safetensors") && Contains("byte 7"));
}

TEST_CASE("safetensors reader survives random corruption", "[io][safetensors][errors]") {
  const std::string good = serialize(every_dtype(), {{"k", "v"}});
  std::mt19937 rng(1234);
  int accepted = 0, refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % bad.size();
      switch (rng() % 3) {
        case 0: bad[at] = static_cast<char>(bad[at] ^ (1 << (rng() % 8))); break;
        case 1: bad[at] = static_cast<char>(rng()); break;
        default: bad.resize(at); break;
      }
      if (bad.empty()) break;
    }
    try {
      parse(bad);
      ++accepted;  // e.g. a flip inside a tensor's data
    } catch (const Error&) {
      ++refused;
    }
  }
  CHECK(refused > 0);
  CHECK(accepted + refused == 3000);
}
