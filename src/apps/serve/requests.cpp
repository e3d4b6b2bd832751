// Parsing and checking of request bodies (see requests.hpp).
#include "requests.hpp"

#include <algorithm>
#include <limits>

#include <nlohmann/json.hpp>

#include "api_error.hpp"
#include "base64.hpp"
#include "loom/core/error.hpp"
#include "media.hpp"

namespace loom::serve {

namespace {

using nlohmann::json;

constexpr const char* kText = "text";
constexpr const char* kImage = "image_png_base64";
constexpr const char* kAudio = "audio_wav_base64";
constexpr const char* kInputKeys[] = {kText, kImage, kAudio};
constexpr int64_t kMaxInputs = 256, kMaxCandidates = 10000, kMaxK = 1000, kMaxNewTokens = 1024;

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::vector<std::string> allowed_fields(Endpoint e) {
  switch (e) {
    case Endpoint::embed: return {kText, kImage, kAudio, "inputs", "adapter"};
    case Endpoint::retrieve: return {kText, kImage, kAudio, "k", "candidates", "adapter"};
    case Endpoint::caption: return {kImage, "language", "adapter"};
    case Endpoint::transcribe: return {kAudio, "language", "adapter"};
    case Endpoint::generate: return {"prompt", "max_tokens", "temperature", "top_k", "seed"};
  }
  return {};
}

void check_fields(const json& body, Endpoint e) {
  const auto allowed = allowed_fields(e);
  for (const auto& [key, value] : body.items()) {
    if (e == Endpoint::generate && key == "adapter")
      throw bad_request("/v1/generate takes no \"adapter\": adapters apply to the omni model");
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      throw bad_request("unknown field \"" + key + "\" for " + endpoint_path(e) + " (its fields: " + join(allowed) +
                        ")");
  }
}

std::string type_name(const json& v) { return v.is_null() ? "null" : v.type_name(); }

std::string get_string(const json& v, const std::string& field) {
  if (!v.is_string()) throw bad_request(field + " must be a string (got " + type_name(v) + ")");
  return v.get<std::string>();
}

int64_t get_int(const json& v, const std::string& field, int64_t lo, int64_t hi) {
  if (!v.is_number_integer())
    throw bad_request(field + " must be an integer (got " + (v.is_number() ? v.dump() : type_name(v)) + ")");
  bool outside = false;  // unsigned values may not fit int64_t
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    outside = u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo));
  } else {
    outside = v.get<int64_t>() < lo || v.get<int64_t>() > hi;
  }
  if (outside)
    throw bad_request(field + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (got " +
                      v.dump() + ")");
  return v.get<int64_t>();
}

std::vector<uint8_t> decode_base64(const std::string& text, const std::string& field) {
  try {
    return base64_decode(text, field);
  } catch (const Error& e) {
    throw bad_request(e.what());
  }
}

// `at` prefixes field names in errors ("inputs[2]." or "").
Input parse_input(const json& obj, const std::string& at, const RequestContext& context) {
  std::vector<std::string> present;
  for (const char* key : kInputKeys)
    if (obj.contains(key)) present.push_back(key);
  if (present.empty())
    throw bad_request((at.empty() ? std::string("the body") : at.substr(0, at.size() - 1)) +
                      " needs one input: \"text\", \"image_png_base64\" or \"audio_wav_base64\"");
  if (present.size() > 1) throw bad_request(at + join(present) + ": give only one input per object");
  const std::string key = present[0], field = at + key;
  const std::string value = get_string(obj[key], field);
  Input in;
  if (key == kText) {
    if (value.empty()) throw bad_request(field + " is empty");
    in.kind = Input::Kind::text;
    in.text = value;
  } else if (key == kImage) {
    in.kind = Input::Kind::image;
    in.image = image_from_png(decode_base64(value, field), context.image_side, field);
  } else {
    in.kind = Input::Kind::audio;
    in.speech = speech_from_wav(decode_base64(value, field), field);
  }
  return in;
}

std::string parse_language(const json& body) {
  if (!body.contains("language")) return "en";
  const std::string l = get_string(body["language"], "language");
  if (l != "en" && l != "zh") throw bad_request("language must be \"en\" or \"zh\" (got \"" + l + "\")");
  return l;
}

std::string parse_adapter(const json& body, const RequestContext& context) {
  if (!body.contains("adapter")) return "";
  const std::string name = get_string(body["adapter"], "adapter");
  if (name.empty() || std::find(context.adapters.begin(), context.adapters.end(), name) != context.adapters.end())
    return name;
  throw bad_request("unknown adapter \"" + name + "\" (loaded: " +
                    (context.adapters.empty() ? std::string("none; start loom-serve with --adapter NAME=DIR")
                                              : join(context.adapters)) +
                    ")");
}

json parse_body(const std::string& text) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::parse_error& e) {
    throw bad_request(std::string("malformed JSON: ") + e.what());
  }
  if (!body.is_object()) throw bad_request("the body must be a JSON object (got " + type_name(body) + ")");
  return body;
}

}  // namespace

const char* endpoint_path(Endpoint e) {
  switch (e) {
    case Endpoint::embed: return "/v1/embed";
    case Endpoint::retrieve: return "/v1/retrieve";
    case Endpoint::caption: return "/v1/caption";
    case Endpoint::transcribe: return "/v1/transcribe";
    case Endpoint::generate: return "/v1/generate";
  }
  return "?";
}

Request parse_request(Endpoint endpoint, const std::string& text, const RequestContext& context) {
  const json body = parse_body(text);
  check_fields(body, endpoint);
  Request r;
  r.endpoint = endpoint;
  switch (endpoint) {
    case Endpoint::embed:
      r.adapter = parse_adapter(body, context);
      if (!body.contains("inputs")) {
        r.inputs.push_back(parse_input(body, "", context));
        break;
      }
      for (const char* key : kInputKeys)
        if (body.contains(key)) throw bad_request(std::string("give either \"inputs\" or \"") + key + "\", not both");
      if (!body["inputs"].is_array() || body["inputs"].empty() ||
          body["inputs"].size() > static_cast<size_t>(kMaxInputs))
        throw bad_request("inputs must be an array of 1 to " + std::to_string(kMaxInputs) + " input objects");
      for (size_t i = 0; i < body["inputs"].size(); ++i) {
        const json& item = body["inputs"][i];
        const std::string at = "inputs[" + std::to_string(i) + "]";
        if (!item.is_object()) throw bad_request(at + " must be an object (got " + type_name(item) + ")");
        for (const auto& [key, value] : item.items())
          if (std::find(std::begin(kInputKeys), std::end(kInputKeys), key) == std::end(kInputKeys))
            throw bad_request("unknown field \"" + key + "\" in " + at +
                              " (an input has one of: text, image_png_base64, audio_wav_base64)");
        r.inputs.push_back(parse_input(item, at + ".", context));
      }
      break;
    case Endpoint::retrieve:
      r.adapter = parse_adapter(body, context);
      r.inputs.push_back(parse_input(body, "", context));
      if (!body.contains("candidates") && !context.index) throw bad_request(kNoIndex);
      if (body.contains("k")) r.k = get_int(body["k"], "k", 1, kMaxK);
      if (body.contains("candidates")) {
        const json& c = body["candidates"];
        if (!c.is_array() || c.empty() || c.size() > static_cast<size_t>(kMaxCandidates))
          throw bad_request("candidates must be an array of 1 to " + std::to_string(kMaxCandidates) + " texts");
        r.has_candidates = true;
        for (size_t i = 0; i < c.size(); ++i) {
          const std::string field = "candidates[" + std::to_string(i) + "]";
          r.candidates.push_back(get_string(c[i], field));
          if (r.candidates.back().empty()) throw bad_request(field + " is empty");
        }
      }
      break;
    case Endpoint::caption:
    case Endpoint::transcribe: {
      const char* key = endpoint == Endpoint::caption ? kImage : kAudio;
      if (!body.contains(key))
        throw bad_request(std::string("missing field \"") + key + "\" (" +
                          (endpoint == Endpoint::caption ? "a base64 PNG of " + std::to_string(context.image_side) +
                                                               "x" + std::to_string(context.image_side) + " pixels"
                                                         : std::string("a base64 16-bit PCM WAV file")) +
                          ")");
      r.adapter = parse_adapter(body, context);
      r.language = parse_language(body);
      r.inputs.push_back(parse_input(body, "", context));
      break;
    }
    case Endpoint::generate:
      if (!context.generator) throw bad_request(kNoGenerator);
      if (!body.contains("prompt")) throw bad_request("missing field \"prompt\" (the text to continue)");
      r.prompt = get_string(body["prompt"], "prompt");
      if (r.prompt.empty()) throw bad_request("prompt is empty");
      if (body.contains("max_tokens")) r.max_tokens = get_int(body["max_tokens"], "max_tokens", 1, kMaxNewTokens);
      if (body.contains("top_k")) r.top_k = get_int(body["top_k"], "top_k", 0, 1 << 20);
      if (body.contains("seed"))
        r.seed = static_cast<uint64_t>(get_int(body["seed"], "seed", 0, std::numeric_limits<int64_t>::max()));
      if (body.contains("temperature")) {
        const json& t = body["temperature"];
        if (!t.is_number() || t.get<double>() < 0 || t.get<double>() > 10)
          throw bad_request("temperature must be a number in [0, 10] (got " + t.dump() + ")");
        r.temperature = t.get<double>();
      }
      break;
  }
  return r;
}

}  // namespace loom::serve
