// Validation of a safetensors header: every size, offset and type is checked
// before anything is allocated, so a hostile file is refused with a message
// instead of crashing or exhausting memory.
#include "safetensors_header.hpp"

#include "strict_json.hpp"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace loom::io {

namespace {
struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {
    {DType::f32, "F32"}, {DType::f64, "F64"}, {DType::bf16, "BF16"}, {DType::f16, "F16"},
    {DType::i32, "I32"}, {DType::i64, "I64"}, {DType::u8, "U8"},     {DType::boolean, "BOOL"},
};
}  // namespace

const char* safetensors_dtype_name(DType dtype) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == dtype) return d.name;
  LOOM_FAIL("safetensors: dtype ", dtype_name(dtype), " has no safetensors name");
}

DType safetensors_dtype_from_name(const std::string& name, const std::string& where) {
  for (const auto& d : kDTypeNames)
    if (name == d.name) return d.dtype;
  LOOM_FAIL(where, ": unsupported dtype \"", name, "\" (loom reads F32, F64, BF16, F16, I32, I64, U8, BOOL)");
}

namespace detail {

using nlohmann::json;

namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

const char* kind(const json& v) { return json_kind(v); }

// A non-negative integer that fits in u64, or an error naming `field`.
uint64_t unsigned_value(const json& v, const std::string& field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) LOOM_FAIL(field, " is ", v.get<int64_t>(), " (must be a non-negative integer)");
  if (v.is_number_float()) LOOM_FAIL(field, " is ", v.dump(), " (must be a non-negative integer)");
  LOOM_FAIL(field, " is ", kind(v), " (must be a non-negative integer)");
}

Metadata parse_metadata(const json& v, const std::string& where) {
  LOOM_CHECK(v.is_object(), where, ": \"__metadata__\" is ", kind(v), " (must be an object of strings)");
  Metadata out;
  for (const auto& [key, value] : v.items()) {
    LOOM_CHECK(value.is_string(), where, ": \"__metadata__\".\"", key, "\" is ", kind(value), " (must be a string)");
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

SafetensorsEntry parse_entry(const std::string& name, const json& v, uint64_t data_size, const std::string& where) {
  const std::string field = where + ": tensor \"" + name + "\"";
  LOOM_CHECK(v.is_object(), field, " is ", kind(v), " (must be an object with dtype, shape, data_offsets)");
  for (const auto& [key, value] : v.items()) {
    (void)value;
    LOOM_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", field, " has the unknown key \"", key, "\"");
  }
  for (const char* key : {"dtype", "shape", "data_offsets"})
    LOOM_CHECK(v.contains(key), field, " has no \"", key, "\"");

  SafetensorsEntry e;
  e.name = name;
  const json& dtype = v["dtype"];
  LOOM_CHECK(dtype.is_string(), field, ": \"dtype\" is ", kind(dtype), " (must be a string)");
  e.dtype = safetensors_dtype_from_name(dtype.get<std::string>(), field + ": \"dtype\"");

  const json& shape = v["shape"];
  LOOM_CHECK(shape.is_array(), field, ": \"shape\" is ", kind(shape), " (must be an array of integers)");
  uint64_t nonzero_product = 1;  // bounds the strides loom will compute
  uint64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const uint64_t d = unsigned_value(shape[i], field + ": \"shape\"[" + std::to_string(i) + "]");
    if (d == 0) {
      numel = 0;
    } else {
      LOOM_CHECK(nonzero_product <= kInt64Max / d, field, ": \"shape\" ", shape.dump(),
                 " has too many elements (the product does not fit in int64)");
      nonzero_product *= d;
    }
    e.shape.push_back(static_cast<int64_t>(d));
  }
  if (numel != 0) numel = nonzero_product;
  const uint64_t item = itemsize(e.dtype);
  LOOM_CHECK(numel <= std::numeric_limits<uint64_t>::max() / item, field, ": \"shape\" ", shape.dump(),
             " is too large in bytes");
  const uint64_t nbytes = numel * item;

  const json& offsets = v["data_offsets"];
  LOOM_CHECK(offsets.is_array() && offsets.size() == 2, field, ": \"data_offsets\" is ", offsets.dump().substr(0, 80),
             " (must be [begin, end])");
  e.begin = unsigned_value(offsets[0], field + ": \"data_offsets\"[0]");
  e.end = unsigned_value(offsets[1], field + ": \"data_offsets\"[1]");
  LOOM_CHECK(e.begin <= e.end, field, ": \"data_offsets\" [", e.begin, ", ", e.end, "] has begin > end");
  LOOM_CHECK(e.end <= data_size, field, ": \"data_offsets\" [", e.begin, ", ", e.end, "] run past the data block (",
             data_size, " bytes)");
  LOOM_CHECK(e.end - e.begin == nbytes, field, ": \"data_offsets\" [", e.begin, ", ", e.end, "] hold ",
             e.end - e.begin, " bytes but \"shape\" ", shape.dump(), " of ", safetensors_dtype_name(e.dtype), " needs ",
             nbytes);
  return e;
}

}  // namespace

uint64_t check_safetensors_prefix(const uint8_t* prefix8, uint64_t file_size, const std::string& where) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix8[i];
  LOOM_CHECK(n <= kMaxSafetensorsHeader, where, ": header length ", n, " exceeds the cap of ", kMaxSafetensorsHeader,
             " bytes");
  LOOM_CHECK(n <= file_size - 8, where, ": header length ", n, " is larger than the rest of the file (",
             file_size - 8, " bytes)");
  return n;
}

SafetensorsHeader parse_safetensors_header(const char* text, size_t n, uint64_t data_size, const std::string& where) {
  std::unordered_map<std::string, size_t> order;
  const json header = parse_strict_json(text, n, where + ": header", &order);
  LOOM_CHECK(header.is_object(), where, ": header is ", kind(header), " (must be a JSON object)");

  SafetensorsHeader out;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      out.metadata = parse_metadata(value, where);
    } else {
      out.entries.push_back(parse_entry(key, value, data_size, where));
    }
  }

  // File order: by offset; zero-byte tensors at the same offset keep the order
  // of the header (which is the writer's order).
  std::sort(out.entries.begin(), out.entries.end(), [&](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return order.at(a.name) < order.at(b.name);
  });

  // The tensors must tile the data block exactly: no overlap, no gap.
  uint64_t pos = 0;
  const SafetensorsEntry* previous = nullptr;
  for (const auto& e : out.entries) {
    LOOM_CHECK(e.begin >= pos, where, ": tensor \"", e.name, "\" [", e.begin, ", ", e.end, ") overlaps tensor \"",
               previous->name, "\" [", previous->begin, ", ", previous->end, ")");
    LOOM_CHECK(e.begin == pos, where, ": bytes [", pos, ", ", e.begin,
               ") of the data block belong to no tensor (before tensor \"", e.name, "\")");
    pos = e.end;
    previous = &e;
  }
  LOOM_CHECK(pos == data_size, where, ": bytes [", pos, ", ", data_size,
             ") at the end of the data block belong to no tensor");
  return out;
}

}  // namespace detail
}  // namespace loom::io
