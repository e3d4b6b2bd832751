// JSON parsing that refuses duplicate keys (see strict_json.hpp).
#include "strict_json.hpp"

#include <set>
#include <vector>

#include "loom/core/error.hpp"

namespace loom::io::detail {

using nlohmann::json;

const char* json_kind(const json& v) {
  if (v.is_number_float()) return "a non-integer number";
  if (v.is_number_integer()) return "an integer";
  return v.type_name();
}

json parse_strict_json(const char* text, size_t n, const std::string& where,
                       std::unordered_map<std::string, size_t>* top_level_order) {
  std::vector<std::set<std::string>> open_objects;  // the keys seen in each open object
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case json::parse_event_t::object_end: open_objects.pop_back(); break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        LOOM_CHECK(open_objects.back().insert(key).second, where, ": the key \"", key, "\" appears twice");
        if (top_level_order && open_objects.size() == 1) top_level_order->emplace(key, top_level_order->size());
        break;
      }
      default: break;
    }
    return true;
  };
  try {
    return json::parse(text, text + n, callback);
  } catch (const json::exception& e) {
    LOOM_FAIL(where, ": not valid JSON (", e.what(), ")");
  }
}

}  // namespace loom::io::detail
