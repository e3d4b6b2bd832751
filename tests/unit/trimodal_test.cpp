// The tri-modal dataset (loom/data/trimodal.hpp): the caption grammar in
// both languages, the held-out colour x class pairs, and the real build
// through `loom-data trimodal` (espeak-ng speech, Fashion-MNIST items):
// determinism, caption/item agreement, held-out pairs absent from training,
// speech files, varied voices for equal captions, and the reader's shapes.
// Missing packages fail the tests, naming the package (no skips).
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <loom/audio/wav.hpp>
#include <loom/core/error.hpp>
#include <loom/data/idx.hpp>
#include <loom/data/trimodal.hpp>
#include <loom/io/safetensors.hpp>

namespace fs = std::filesystem;
using namespace loom::data::trimodal;
using json = nlohmann::json;

namespace {

using loom::testing::TempDir;

void require_packages() {
  INFO("install the Debian package dataset-fashion-mnist (scripts/install-deps.sh)");
  REQUIRE(fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
}

// loom-data sits next to this test binary (both in build/bin).
std::string loom_data() {
  const fs::path exe = fs::read_symlink("/proc/self/exe").parent_path() / "loom-data";
  INFO("build the loom-data target (it sits next to the unit tests in build/bin): " << exe);
  REQUIRE(fs::exists(exe));
  return exe.string();
}

// Runs loom-data with `args`; fails with its output unless it exits 0.
void run_loom_data(const std::string& args, const fs::path& log) {
  const std::string cmd = loom_data() + " " + args + " > " + log.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream out;
  out << in.rdbuf();
  INFO("command: " << cmd << "\noutput: " << out.str()
                   << "\n(speech needs the Debian packages espeak-ng and libespeak-ng-dev at build time)");
  REQUIRE(rc == 0);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, std::string> all_files(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = slurp(e.path());
  return files;
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

Item item_from(const json& j) {
  Item it;
  it.cls = j.at("class");
  it.colour = j.at("colour");
  if (j.contains("position"))
    for (int p = 0; p < kNumPositions; ++p)
      if (j["position"] == position_names()[p]) it.position = p;
  return it;
}

ClassIndex train_classes() {
  const auto labels = loom::data::read_idx("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
  return class_index(labels.to_vector<uint8_t>());
}

}  // namespace

TEST_CASE("trimodal captions follow the grammar in English and Chinese", "[trimodal]") {
  Item sneaker{7, 0, 0}, bag{8, 2, 1}, orange{8, 5, 4};
  CHECK(caption_en({sneaker, bag}) == "a red sneaker on the left and a blue bag on the right");
  CHECK(caption_zh({sneaker, bag}) == "左边是红色的运动鞋，右边是蓝色的包");
  CHECK(caption_en({orange}) == "an orange bag in the center");
  CHECK(caption_zh({orange}) == "中间是橙色的包");
  const auto pe = paraphrases_en({sneaker, bag});
  const auto pz = paraphrases_zh({sneaker, bag});
  CHECK(pe.size() == 3);
  CHECK(pe[0] == "there is a red sneaker on the left and a blue bag on the right");
  CHECK(pe[2] == "on the left there is a red sneaker and on the right there is a blue bag");
  CHECK(pz[0] == "红色的运动鞋在左边，蓝色的包在右边");
  CHECK(pz[1] == "图中左边有一个红色的运动鞋，右边有一个蓝色的包");
  CHECK(motion_caption_en(sneaker, 0) == "a red sneaker moving to the right");
  CHECK(motion_caption_zh(sneaker, 0) == "红色的运动鞋向右移动");
  CHECK_THROWS_WITH(caption_en({}), Catch::Contains("one or two items"));
}

TEST_CASE("held-out pairs are 10% of colour x class, fixed by the seed, and never in training scenes", "[trimodal]") {
  require_packages();
  const auto held = held_out_pairs(3);
  CHECK(held.size() == kNumColours * kNumClasses / 10);
  CHECK(held == held_out_pairs(3));
  CHECK(held != held_out_pairs(4));
  const ClassIndex classes = train_classes();
  int held_eval = 0;
  for (int64_t i = 0; i < 500; ++i) {
    const Scene s = make_scene(3, true, i, classes);
    CHECK_FALSE(s.held_out);
    for (const Item& it : s.items) CHECK(std::find(held.begin(), held.end(), std::make_pair(it.colour, it.cls)) == held.end());
    CHECK_FALSE(make_video(3, true, i, classes).held_out);
    held_eval += make_scene(3, false, i, classes).held_out;  // (train class index: only the draws matter here)
  }
  CHECK(held_eval > 100);
}

TEST_CASE("loom-data trimodal is deterministic in the seed", "[trimodal]") {
  require_packages();
  TempDir tmp;
  const std::string sizes = " --scenes 6 --eval-scenes 3 --videos 2 --eval-videos 2 --quiet";
  run_loom_data("trimodal --seed 5 --out " + (tmp.path / "a").string() + sizes, tmp.path / "a.log");
  run_loom_data("trimodal --seed 5 --out " + (tmp.path / "b").string() + sizes, tmp.path / "b.log");
  run_loom_data("trimodal --seed 6 --out " + (tmp.path / "c").string() + sizes, tmp.path / "c.log");
  const auto a = all_files(tmp.path / "a"), b = all_files(tmp.path / "b"), c = all_files(tmp.path / "c");
  CHECK(a.size() == 18 + 8 + 1);  // 18 WAVs, 2 x (images, video, captions, video captions), manifest
  CHECK(a == b);
  int differing = 0;
  for (const auto& [name, bytes] : a) differing += c.count(name) && c.at(name) != bytes;
  CHECK(differing >= 10);
  CHECK_FALSE(fs::exists(tmp.path / ("a.tmp-" + std::to_string(::getpid()))));
}

TEST_CASE("loom-data trimodal --small: captions, held-out pairs, speech, videos and the reader", "[trimodal]") {
  require_packages();
  // Pick the first seed whose 64 training scenes repeat an English caption,
  // so that the build holds two equal captions to compare waveforms.
  const ClassIndex classes = train_classes();
  uint64_t seed = 0;
  int64_t first = -1, second = -1;
  for (; seed < 100 && second < 0; ++seed) {
    std::map<std::string, int64_t> seen;
    for (int64_t i = 0; i < 64 && second < 0; ++i) {
      const std::string en = make_scene(seed, true, i, classes).en;
      if (seen.count(en)) first = seen[en], second = i;
      seen[en] = i;
    }
    if (second >= 0) break;
  }
  REQUIRE(second >= 0);

  TempDir tmp;
  const fs::path root = tmp.path / "data";
  run_loom_data("trimodal --small --quiet --seed " + std::to_string(seed) + " --out " + root.string(), tmp.path / "log");

  const json manifest = json::parse(slurp(root / "manifest.json"));
  CHECK(manifest["seed"] == seed);
  CHECK(manifest["counts"]["train"]["scenes"] == 64);
  CHECK(manifest["counts"]["eval"]["scenes"] == 32);
  CHECK(manifest["classes"]["zh"][7] == "运动鞋");
  std::set<std::pair<int, int>> held;
  for (const auto& h : manifest["held_out"]) held.insert({h["colour"].get<int>(), h["class"].get<int>()});
  CHECK(held.size() == 8);

  for (const std::string split : {"train", "eval"}) {
    INFO("split " << split);
    const auto captions = read_jsonl(root / split / "captions.jsonl");
    REQUIRE(captions.size() == (split == "train" ? 64u : 32u));
    int held_scenes = 0;
    for (const json& c : captions) {
      std::vector<Item> items;
      bool any_held = false;
      for (const json& j : c["items"]) {
        items.push_back(item_from(j));
        any_held = any_held || held.count({items.back().colour, items.back().cls});
        CHECK(c["en"].get<std::string>().find(class_names_en()[items.back().cls]) != std::string::npos);
        CHECK(c["zh"].get<std::string>().find(j["colour_zh"].get<std::string>() + "的" + class_names_zh()[items.back().cls]) !=
              std::string::npos);
      }
      CHECK(c["en"] == caption_en(items));
      CHECK(c["zh"] == caption_zh(items));
      CHECK(c["held_out"] == any_held);
      held_scenes += any_held;
      for (const char* lang : {"en", "zh"}) {
        const auto wav = loom::audio::read_wav((root / split / c["audio"][lang].get<std::string>()).string());
        CHECK(wav.sample_rate == 16000);
        CHECK(wav.channels == 1);
        CHECK(wav.seconds() > 0.8);
        CHECK(wav.seconds() < 10.0);
        double energy = 0;
        for (int16_t v : wav.samples) energy += double(v) * v;
        CHECK(std::sqrt(energy / wav.samples.size()) > 300.0);  // not silent (RMS of int16)
      }
    }
    if (split == "train") CHECK(held_scenes == 0);
    else CHECK(held_scenes > 0);

    const auto videos = read_jsonl(root / split / "video_captions.jsonl");
    REQUIRE(videos.size() == (split == "train" ? 16u : 8u));
    for (const json& v : videos) {
      const Item it = item_from(v["item"]);
      int dir = 0;
      while (direction_names()[dir] != v["direction"].get<std::string>()) ++dir;
      CHECK(v["en"] == motion_caption_en(it, dir));
      CHECK(v["zh"] == motion_caption_zh(it, dir));
      if (split == "train") CHECK_FALSE(held.count({it.colour, it.cls}));
    }
    const auto video = loom::io::load_safetensors((root / split / "video.safetensors").string());
    REQUIRE(video.size() == 1);
    CHECK(video[0].second.shape() == loom::Shape{int64_t(videos.size()), 8, 64, 64, 3});
  }

  // Two equal captions, two different waveforms.
  const auto captions = read_jsonl(root / "train" / "captions.jsonl");
  REQUIRE(captions[first]["en"] == captions[second]["en"]);
  const auto w1 = loom::audio::read_wav((root / "train" / captions[first]["audio"]["en"].get<std::string>()).string());
  const auto w2 = loom::audio::read_wav((root / "train" / captions[second]["audio"]["en"].get<std::string>()).string());
  CHECK(w1.samples != w2.samples);

  // The reader.
  for (const char* lang : {"en", "zh"}) {
    TrimodalDataset ds(root.string(), "eval", {lang, 300});
    REQUIRE(ds.size() == 32);
    const auto ex = ds.get(3);
    REQUIRE(ex.size() == 6);
    CHECK(ex[0].shape() == loom::Shape{3, 64, 64});
    CHECK(ex[0].dtype() == loom::DType::f32);
    CHECK(ex[1].shape() == loom::Shape{300, 80});
    CHECK(ex[2].shape() == loom::Shape{2});
    CHECK(ex[3].shape() == loom::Shape{2});
    CHECK(ex[4].shape() == loom::Shape{2});
    CHECK(ex[5].dim() == 0);
    CHECK(ex[2].to_vector<int64_t>()[0] == ds.records()[3].items[0].cls);
    const auto px = ex[0].to_vector<float>();
    CHECK(*std::max_element(px.begin(), px.end()) <= 1.0f);
    CHECK(*std::max_element(px.begin(), px.end()) > 0.2f);
    const auto mel = ex[1].to_vector<float>();
    CHECK(*std::max_element(mel.begin(), mel.end()) > std::log(1e-6f) + 10);
  }
  CHECK_THROWS_WITH(TrimodalDataset(root.string(), "test"), Catch::Contains("expected train or eval"));
}
