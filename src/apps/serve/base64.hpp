// Base64 (RFC 4648, standard alphabet) for the media fields of loom-serve's
// JSON bodies ("image_png_base64", "audio_wav_base64").
//
// Decoding is strict about content and lenient about layout: ASCII
// whitespace is skipped (wrapped lines), the '=' padding may be left off, and
// anything else outside the alphabet, padding before the end, or a length
// that cannot come from whole bytes is an error naming the field and the
// offending position.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::serve {

std::string base64_encode(const uint8_t* data, size_t size);
inline std::string base64_encode(const std::vector<uint8_t>& bytes) { return base64_encode(bytes.data(), bytes.size()); }
inline std::string base64_encode(std::string_view bytes) {
  return base64_encode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// Throws loom::Error starting with `field` on malformed input.
std::vector<uint8_t> base64_decode(std::string_view text, const std::string& field);

}  // namespace loom::serve
