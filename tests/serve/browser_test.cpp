// The web page in a real browser (label browser): headless Chromium loads
// /?demo=1 from an in-process server, the page captions and transcribes the
// built-in sample through the API, and the dumped DOM must show the caption,
// transcript and nearest captions that the API answers for the same sample.
// Without Chromium it exits 77, which ctest reports as skipped.
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "world.hpp"

namespace fs = std::filesystem;
using namespace loom::serve_test;
using nlohmann::json;

namespace {

std::string find_chromium() {
  if (const char* env = std::getenv("LOOM_CHROMIUM")) return env;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
      const fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
      if (!candidate.parent_path().empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    start = end + 1;
  }
  return "";
}

std::string unescape_html(std::string s) {
  const std::pair<const char*, const char*> entities[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", "\xc2\xa0"}, {"&amp;", "&"}};
  for (const auto& [from, to] : entities)
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + std::strlen(to)))
      s.replace(at, std::strlen(from), to);
  return s;
}

// The text inside the element that starts with `open` (up to its closing tag `close`).
std::string element_text(const std::string& dom, const std::string& open, const std::string& close) {
  const size_t a = dom.find(open);
  if (a == std::string::npos) return "<no " + open + ">";
  const size_t b = dom.find(close, a + open.size());
  return unescape_html(dom.substr(a + open.size(), b - a - open.size()));
}

int check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok:   " : "FAIL: ") << what << "\n";
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    std::cout << "SKIP: no chromium on PATH (apt-get install chromium, or LOOM_BROWSER_TESTS=1 "
                 "scripts/install-deps.sh; LOOM_CHROMIUM=/path/to/chrome picks another)\n";
    return 77;
  }
  try {
    TestServer server;
    const json sample = server.get("/v1/sample").json;
    const json caption = server.post("/v1/caption", json{{"image_png_base64", sample["image_png_base64"]}}).json;
    const json transcript = server.post("/v1/transcribe", json{{"audio_wav_base64", sample["audio_wav_base64"]}}).json;
    const json nearest =
        server.post("/v1/retrieve", json{{"image_png_base64", sample["image_png_base64"]}, {"k", 5}}).json;

    const fs::path profile = fs::temp_directory_path() / ("loom-serve-chromium-" + std::to_string(getpid()));
    const fs::path dom_file = profile.string() + ".html";
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/?demo=1";
    // --virtual-time-budget lets the page's fetches finish before the DOM is
    // dumped. A cold browser start on a busy machine can use the budget up
    // before the demo's requests are answered, so a dump without the demo
    // done is retried (with a longer budget) before it counts as a failure.
    int status = 0;
    std::string dom;
    for (int attempt = 1; attempt <= 3; ++attempt) {
      const std::string command = "timeout 120 '" + chromium +
                                  "' --headless --disable-gpu --no-sandbox --no-first-run --user-data-dir='" +
                                  profile.string() + "' --virtual-time-budget=" + std::to_string(30000 * attempt) +
                                  " --dump-dom '" + url + "' > '" + dom_file.string() + "' 2>/dev/null";
      std::cout << "running (attempt " << attempt << "): " << command << "\n";
      status = std::system(command.c_str());
      dom.clear();
      FILE* f = std::fopen(dom_file.c_str(), "rb");
      char buf[4096];
      while (f && !std::feof(f)) dom.append(buf, std::fread(buf, 1, sizeof buf, f));
      if (f) std::fclose(f);
      if (status == 0 && dom.find("data-demo=\"done\"") != std::string::npos) break;
      std::cout << "attempt " << attempt << ": the page's demo is not done in the dump\n";
    }
    fs::remove_all(profile);
    fs::remove(dom_file);

    int failures = check(status == 0, "chromium exited 0 (status " + std::to_string(status) + ")");
    failures += check(dom.find("data-demo=\"done\"") != std::string::npos, "the page says its demo is done");
    const std::string shown_caption = element_text(dom, "<dd id=\"caption\">", "</dd>");
    failures += check(shown_caption == caption["caption"].get<std::string>(),
                      "caption in the page '" + shown_caption + "' == API '" + caption["caption"].get<std::string>() + "'");
    const std::string shown_transcript = element_text(dom, "<dd id=\"transcript\">", "</dd>");
    failures += check(shown_transcript == transcript["text"].get<std::string>(),
                      "transcript in the page '" + shown_transcript + "' == API '" +
                          transcript["text"].get<std::string>() + "'");
    // The page's list of nearest captions, scores to 3 decimals, is the API's
    // (the page sends the picture through its canvas, so this also checks
    // that a browser-made RGBA PNG carries the same pixels).
    std::string expected_list;
    for (const auto& r : nearest["results"]) {
      char score[32];
      std::snprintf(score, sizeof score, "%.3f", r["score"].get<double>());
      expected_list += "<li>" + r["text"].get<std::string>() + "<span class=\"score\">" + score + "</span></li>";
    }
    const std::string list = element_text(dom, "<ol id=\"image-neighbours\">", "</ol>");
    failures += check(list == expected_list, "nearest captions in the page\n  " + list + "\n== API\n  " + expected_list);
    if (failures) std::cout << "--- dumped DOM ---\n" << dom << "\n";
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::cout << "FAIL: " << e.what() << "\n";
    return 1;
  }
}
