// Base64 encoding and strict decoding (see base64.hpp).
#include "base64.hpp"

#include <array>

#include "loom/core/error.hpp"

namespace loom::serve {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The 6-bit value of each character, -1 outside the alphabet.
constexpr std::array<int8_t, 256> make_values() {
  std::array<int8_t, 256> v{};
  for (auto& x : v) x = -1;
  for (int i = 0; i < 64; ++i) v[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return v;
}
constexpr auto kValues = make_values();

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\v'; }

std::string describe(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  static const char* hex = "0123456789abcdef";
  return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
}

}  // namespace

std::string base64_encode(const uint8_t* data, size_t size) {
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (size_t i = 0; i < size; i += 3) {
    const uint32_t n = (uint32_t{data[i]} << 16) | (i + 1 < size ? uint32_t{data[i + 1]} << 8 : 0) |
                       (i + 2 < size ? uint32_t{data[i + 2]} : 0);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < size ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < size ? kAlphabet[n & 63] : '=');
  }
  return out;
}

std::vector<uint8_t> base64_decode(std::string_view text, const std::string& field) {
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t bits = 0;
  int pending = 0;     // characters in the current group of four
  size_t padding = 0;  // '=' seen; only more '=' or whitespace may follow
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (is_space(c)) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int v = kValues[static_cast<unsigned char>(c)];
    LOOM_CHECK(v >= 0, field, ": invalid base64: ", describe(c), " at offset ", i);
    LOOM_CHECK(padding == 0, field, ": invalid base64: data after '=' padding at offset ", i);
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++pending == 4) {
      out.push_back(static_cast<uint8_t>(bits >> 16));
      out.push_back(static_cast<uint8_t>(bits >> 8));
      out.push_back(static_cast<uint8_t>(bits));
      bits = 0;
      pending = 0;
    }
  }
  LOOM_CHECK(pending != 1, field, ": invalid base64: the length leaves a lone final character");
  LOOM_CHECK(padding == 0 || (pending > 0 && static_cast<int>(padding) == 4 - pending), field,
             ": invalid base64: wrong '=' padding");
  if (pending >= 2) out.push_back(static_cast<uint8_t>(bits >> (pending == 2 ? 4 : 10)));
  if (pending == 3) out.push_back(static_cast<uint8_t>(bits >> 2));
  return out;
}

}  // namespace loom::serve
