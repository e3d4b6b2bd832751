// loom-serve's request bodies: JSON in, a checked Request out.
//
// Every endpoint takes a JSON object. A model input is an object with
// exactly one of "text", "image_png_base64" (a PNG of the model's image
// size) or "audio_wav_base64" (a 16-bit PCM WAV); endpoints that take one
// input take its key at the top level. The fields of each endpoint:
//
//   /v1/embed       one input, or "inputs": [input, ...]; "adapter"
//   /v1/retrieve    one input (the query); "k" (default 5); "candidates": [text, ...]; "adapter"
//   /v1/caption     "image_png_base64"; "language" ("en" or "zh", default "en"); "adapter"
//   /v1/transcribe  "audio_wav_base64"; "language"; "adapter"
//   /v1/generate    "prompt"; "max_tokens" (default 64); "temperature" (0.8); "top_k" (40); "seed" (0)
//
// Anything else (malformed JSON, a missing or unknown field, a wrong type, a
// value out of range, bad base64 or media, an adapter that is not loaded, a
// model the server was started without) is an ApiError (400) whose message
// names the field or the missing command-line flag.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::serve {

enum class Endpoint { embed, retrieve, caption, transcribe, generate };
inline constexpr Endpoint kEndpoints[] = {Endpoint::embed, Endpoint::retrieve, Endpoint::caption,
                                          Endpoint::transcribe, Endpoint::generate};
const char* endpoint_path(Endpoint e);  // "/v1/embed", ...

struct Input {
  enum class Kind { text, image, audio } kind = Kind::text;
  std::string text;
  Tensor image;               // f32 [3, S, S]
  std::vector<float> speech;  // 16 kHz mono
};

struct Request {
  Endpoint endpoint = Endpoint::embed;
  std::string adapter;   // "" = the base model
  std::string language;  // caption, transcribe
  std::vector<Input> inputs;  // embed: all; retrieve: the query; caption, transcribe: the one input
  // retrieve
  int64_t k = 5;
  bool has_candidates = false;
  std::vector<std::string> candidates;
  // generate
  std::string prompt;
  int64_t max_tokens = 64;
  double temperature = 0.8;
  int64_t top_k = 40;
  uint64_t seed = 0;
};

// What the server has loaded, for checking requests against it.
struct RequestContext {
  int64_t image_side = 64;
  std::vector<std::string> adapters;
  bool generator = false;  // --generator given
  bool index = false;      // a default caption index exists
};

inline constexpr const char* kNoGenerator = "no generator loaded: start loom-serve with --generator GPT_RUN_DIR";
inline constexpr const char* kNoIndex =
    "no caption index: pass \"candidates\": [texts], or start loom-serve with --index CAPTIONS.txt";

// Throws ApiError (400) on anything wrong with `body`.
Request parse_request(Endpoint endpoint, const std::string& body, const RequestContext& context);

}  // namespace loom::serve
