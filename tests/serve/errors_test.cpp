// Every class of bad request gets its 4xx status and a JSON {"error"} that
// names the problem, and the server keeps answering afterwards.
#include <catch2/catch.hpp>

#include <httplib.h>

#include <loom/audio/wav.hpp>
#include <loom/io/png.hpp>
#include <loom/ops/ops.hpp>

#include "serve/base64.hpp"
#include "world.hpp"

using namespace loom;
using namespace loom::serve_test;
using Catch::Contains;
using nlohmann::json;

namespace {

struct Case {
  const char* what;
  std::string method, path, body;
  int status;
  std::vector<std::string> says;  // substrings of the error message
};

std::string small_png_base64() { return serve::base64_encode(io::encode_png(zeros({32, 32, 3}, DType::u8))); }

std::string float_wav_base64() {
  std::string bytes = audio::encode_wav(audio::from_float(std::vector<float>(1600, 0.1f), 16000));
  bytes[20] = 3;  // fmt audio format: 3 is IEEE float
  return serve::base64_encode(bytes);
}

}  // namespace

TEST_CASE("bad requests get a 4xx JSON error naming the problem and the server keeps serving", "[serve]") {
  serve::ServeOptions o = world_options();
  o.max_body_bytes = 64 * 1024;
  TestServer server(o);
  const std::string png = scene_png_base64(0), wav = scene_wav_base64(0);
  const std::string big = json{{"text", std::string(100 * 1024, 'a')}}.dump();

  const std::vector<Case> cases = {
      {"malformed JSON", "POST", "/v1/embed", "{\"text\": ", 400, {"malformed JSON"}},
      {"not an object", "POST", "/v1/embed", "[1, 2]", 400, {"must be a JSON object", "array"}},
      {"empty body", "POST", "/v1/caption", "", 400, {"malformed JSON"}},
      {"missing field", "POST", "/v1/caption", "{}", 400, {"missing field \"image_png_base64\"", "64x64"}},
      {"missing prompt", "POST", "/v1/generate", "{\"max_tokens\": 3}", 400, {"missing field \"prompt\""}},
      {"unknown field", "POST", "/v1/caption", json{{"image_png_base64", png}, {"colour", "red"}}.dump(), 400,
       {"unknown field \"colour\"", "/v1/caption", "language"}},
      {"unknown field in an input", "POST", "/v1/embed", json{{"inputs", {{{"text", "x"}, {"lang", "en"}}}}}.dump(), 400,
       {"unknown field \"lang\" in inputs[0]"}},
      {"no input", "POST", "/v1/embed", "{\"adapter\": \"shift\"}", 400, {"needs one input"}},
      {"two inputs in one", "POST", "/v1/embed", json{{"text", "x"}, {"audio_wav_base64", wav}}.dump(), 400,
       {"give only one input"}},
      {"inputs and an input", "POST", "/v1/embed", json{{"inputs", {{{"text", "x"}}}}, {"text", "y"}}.dump(), 400,
       {"either \"inputs\" or \"text\""}},
      {"empty inputs", "POST", "/v1/embed", "{\"inputs\": []}", 400, {"inputs must be an array"}},
      {"empty text", "POST", "/v1/embed", "{\"text\": \"\"}", 400, {"text is empty"}},
      {"wrong type", "POST", "/v1/retrieve", json{{"text", "x"}, {"k", "five"}}.dump(), 400, {"k must be an integer"}},
      {"out of range", "POST", "/v1/retrieve", json{{"text", "x"}, {"k", 0}}.dump(), 400, {"k must be in [1, 1000]"}},
      {"text not a string", "POST", "/v1/embed", "{\"text\": 5}", 400, {"text must be a string"}},
      {"bad base64", "POST", "/v1/caption", "{\"image_png_base64\": \"iVBO*w0K\"}", 400,
       {"image_png_base64", "invalid base64", "'*'", "offset 4"}},
      {"not a PNG", "POST", "/v1/caption", json{{"image_png_base64", wav}}.dump(), 400,
       {"image_png_base64", "not a PNG"}},
      {"wrong picture size", "POST", "/v1/caption", json{{"image_png_base64", small_png_base64()}}.dump(), 400,
       {"32x32", "must be 64x64 RGB"}},
      {"not a WAV", "POST", "/v1/transcribe", json{{"audio_wav_base64", png}}.dump(), 400,
       {"audio_wav_base64", "not a WAV file"}},
      {"not PCM", "POST", "/v1/transcribe", json{{"audio_wav_base64", float_wav_base64()}}.dump(), 400,
       {"audio_wav_base64", "only 1 (PCM) is supported"}},
      {"bad language", "POST", "/v1/caption", json{{"image_png_base64", png}, {"language", "fr"}}.dump(), 400,
       {"language must be \"en\" or \"zh\"", "fr"}},
      {"unknown adapter", "POST", "/v1/embed", json{{"text", "x"}, {"adapter", "nope"}}.dump(), 400,
       {"unknown adapter \"nope\"", "shift"}},
      {"adapter on generate", "POST", "/v1/generate", json{{"prompt", "x"}, {"adapter", "shift"}}.dump(), 400,
       {"takes no \"adapter\""}},
      {"too many tokens", "POST", "/v1/generate", json{{"prompt", "x"}, {"max_tokens", 5000}}.dump(), 400,
       {"max_tokens must be in [1, 1024]"}},
      {"oversize body", "POST", "/v1/embed", big, 413, {"larger than the limit of 65536 bytes"}},
      {"unknown path", "GET", "/v2/anything", "", 404, {"no such endpoint: GET /v2/anything", "POST /v1/caption"}},
      {"unknown path, POST", "POST", "/v1/captions", "{}", 404, {"no such endpoint"}},
      {"GET on a POST endpoint", "GET", "/v1/caption", "", 405, {"method GET is not allowed on /v1/caption", "POST"}},
      {"POST on a GET endpoint", "POST", "/healthz", "{}", 405, {"method POST is not allowed on /healthz"}},
      {"DELETE", "DELETE", "/v1/embed", "", 405, {"method DELETE"}},
  };
  for (const Case& c : cases) {
    INFO(c.what << ": " << c.method << " " << c.path);
    const Answer a = server.send(c.method, c.path, c.body);
    CHECK(a.status == c.status);
    CHECK(a.content_type == "application/json");
    REQUIRE(a.json.is_object());
    REQUIRE(a.json.contains("error"));
    for (const auto& part : c.says) CHECK_THAT(a.json["error"].get<std::string>(), Contains(part));
    REQUIRE(server.get("/healthz").status == 200);
  }

  // Every answer was counted by endpoint and status.
  const auto samples = metric_samples(server.get("/metrics").body);
  auto count = [&](const std::string& name) {
    for (const auto& [n, v] : samples)
      if (n == name) return v;
    return 0.0;
  };
  CHECK(count("loom_serve_requests_total{endpoint=\"/v1/caption\",status=\"400\"}") >= 6);
  CHECK(count("loom_serve_requests_total{endpoint=\"/v1/embed\",status=\"413\"}") == 1);
  CHECK(count("loom_serve_requests_total{endpoint=\"other\",status=\"404\"}") == 2);
  CHECK(count("loom_serve_requests_total{endpoint=\"/healthz\",status=\"405\"}") == 1);
  CHECK(count("loom_serve_requests_total{endpoint=\"/healthz\",status=\"200\"}") >= cases.size());

  // Still serving real requests, also on a connection that sent a form.
  CHECK(server.post("/v1/caption", json{{"image_png_base64", png}}).status == 200);
  httplib::Client client("127.0.0.1", server.port());
  client.set_keep_alive(true);
  const auto form = client.Post("/v1/caption", httplib::MultipartFormDataItems{{"image", png, "scene.png", "image/png"}});
  REQUIRE(form);
  CHECK(form->status == 415);
  CHECK_THAT(form->body, Contains("not as multipart form data"));
  const auto after = client.Post("/v1/embed", "{\"text\": \"a red bag\"}", "application/json");
  REQUIRE(after);
  CHECK(after->status == 200);
}
