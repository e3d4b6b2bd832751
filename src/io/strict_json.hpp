// Internal: JSON parsing for files loom reads back (safetensors headers,
// checkpoint manifests). nlohmann::json silently keeps the last of two equal
// keys; a file with a duplicate key is malformed (or tampered with), so it is
// refused here. Errors are loom::Errors that start with `where`.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

namespace loom::io::detail {

// `top_level_order`, when given, receives the position of each key of the
// top-level object in the text.
nlohmann::json parse_strict_json(const char* text, size_t n, const std::string& where,
                                 std::unordered_map<std::string, size_t>* top_level_order = nullptr);

// The JSON type of a value, for messages ("an integer", "string", ...).
const char* json_kind(const nlohmann::json& v);

}  // namespace loom::io::detail
