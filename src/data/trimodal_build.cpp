// Writes the tri-modal dataset (see loom/data/trimodal.hpp, docs/data.md):
// renders images and videos (in parallel; each scene is a pure function of
// the seed), speaks every caption through the caller's synthesizer (one
// thread: espeak-ng is not thread-safe), and writes the files into a
// temporary directory renamed into place at the end.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "loom/audio/resample.hpp"
#include "loom/core/error.hpp"
#include "loom/core/threads.hpp"
#include "loom/data/idx.hpp"
#include "loom/data/trimodal.hpp"
#include "loom/io/atomic_file.hpp"
#include "loom/io/safetensors.hpp"
#include "loom/ops/creation.hpp"

namespace loom::data::trimodal {

namespace {

using json = nlohmann::json;

json item_json(const Item& it) {
  return {{"class", it.cls},
          {"class_en", class_names_en()[it.cls]},
          {"class_zh", class_names_zh()[it.cls]},
          {"colour", it.colour},
          {"colour_en", colours()[it.colour].en},
          {"colour_zh", colours()[it.colour].zh},
          {"position", position_names()[it.position]},
          {"source_index", it.source}};
}

std::string id_name(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06lld", static_cast<long long>(i));
  return buf;
}

struct Split {
  const char* name;
  bool train;
  int64_t scenes, videos;
  Tensor images, labels;  // Fashion-MNIST u8 [N, 28, 28], [N]
};

class Progress {
 public:
  explicit Progress(bool on) : on_(on), start_(std::chrono::steady_clock::now()) {}
  void update(const std::string& what, int64_t done, int64_t total) {
    if (!on_) return;
    const int64_t step = std::max<int64_t>(1, total / 100);
    if (done % step && done != total) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::fprintf(stderr, "\rtrimodal: %s %lld/%lld (%.0f s)%s", what.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), s, done == total ? "\n" : "");
    std::fflush(stderr);
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point start_;
};

void write_speech(const Synthesizer& synthesize, const std::string& text, const char* voice, int rate, int pitch,
                  int lead, const std::string& path) {
  const audio::Wav raw = synthesize({text, voice, rate, pitch});
  LOOM_CHECK(raw.frames() > 0, "trimodal: the synthesizer returned no audio for voice ", voice, " and text '", text,
             "'");
  std::vector<float> x = audio::resample(audio::to_mono_float(raw), raw.sample_rate, kSampleRate);
  x.insert(x.begin(), static_cast<size_t>(lead), 0.0f);
  // A plain write: the whole directory is synced once (syncfs) before it is
  // renamed into place, instead of two fsyncs per file.
  const std::string bytes = audio::encode_wav(audio::from_float(x, kSampleRate));
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  LOOM_CHECK(out.good(), "trimodal: cannot write ", path);
}

json build_split(const BuildOptions& o, const Split& sp, const std::string& dir, const Synthesizer& synthesize,
                 Progress& progress) {
  namespace fs = std::filesystem;
  fs::create_directories(dir + "/audio");
  const std::vector<uint8_t> labels = sp.labels.to_vector<uint8_t>();
  const ClassIndex classes = class_index(labels);
  const uint8_t* source = sp.images.data<uint8_t>();

  std::vector<Scene> scenes(static_cast<size_t>(sp.scenes));
  std::vector<Video> videos(static_cast<size_t>(sp.videos));
  Tensor images = zeros({sp.scenes, kSide, kSide, 3}, DType::u8);
  Tensor clips = zeros({sp.videos, kVideoFrames, kSide, kSide, 3}, DType::u8);
  uint8_t* img = images.data<uint8_t>();
  uint8_t* vid = clips.data<uint8_t>();
  parallel_for(0, sp.scenes, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      scenes[i] = make_scene(o.seed, sp.train, i, classes);
      render_scene(scenes[i], source, img + i * kSide * kSide * 3);
    }
  });
  parallel_for(0, sp.videos, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      videos[i] = make_video(o.seed, sp.train, i, classes);
      render_video(videos[i], source, vid + i * kVideoFrames * kSide * kSide * 3);
    }
  });
  io::save_safetensors(dir + "/images.safetensors", {{"images", images}}, {{"split", sp.name}});
  io::save_safetensors(dir + "/video.safetensors", {{"video", clips}}, {{"split", sp.name}});

  std::string captions, video_captions;
  int64_t held_scenes = 0, held_videos = 0;
  for (int64_t i = 0; i < sp.scenes; ++i) {
    const Scene& s = scenes[i];
    const std::string id = id_name(i);
    const std::string en_wav = "audio/" + id + "-en.wav", zh_wav = "audio/" + id + "-zh.wav";
    write_speech(synthesize, s.en, "en", s.rate_en, s.pitch_en, s.lead_en, dir + "/" + en_wav);
    write_speech(synthesize, s.zh, "cmn", s.rate_zh, s.pitch_zh, s.lead_zh, dir + "/" + zh_wav);
    progress.update(std::string(sp.name) + " speech", i + 1, sp.scenes);
    json items = json::array();
    for (const Item& it : s.items) items.push_back(item_json(it));
    json line = {{"id", i},
                 {"en", s.en},
                 {"zh", s.zh},
                 {"paraphrases", {{"en", s.paraphrases_en}, {"zh", s.paraphrases_zh}}},
                 {"items", items},
                 {"held_out", s.held_out},
                 {"audio", {{"en", en_wav}, {"zh", zh_wav}}},
                 {"speech",
                  {{"en", {{"voice", "en"}, {"rate", s.rate_en}, {"pitch", s.pitch_en}, {"lead_samples", s.lead_en}}},
                   {"zh", {{"voice", "cmn"}, {"rate", s.rate_zh}, {"pitch", s.pitch_zh}, {"lead_samples", s.lead_zh}}}}}};
    captions += line.dump() + "\n";
    held_scenes += s.held_out;
  }
  for (int64_t i = 0; i < sp.videos; ++i) {
    const Video& v = videos[i];
    json line = {{"id", i},         {"en", v.en}, {"zh", v.zh}, {"item", item_json(v.item)},
                 {"direction", direction_names()[v.direction]}, {"held_out", v.held_out}};
    line["item"].erase("position");
    video_captions += line.dump() + "\n";
    held_videos += v.held_out;
  }
  io::atomic_write_file(dir + "/captions.jsonl", captions);
  io::atomic_write_file(dir + "/video_captions.jsonl", video_captions);
  return {{"scenes", sp.scenes}, {"videos", sp.videos}, {"held_out_scenes", held_scenes},
          {"held_out_videos", held_videos}};
}

}  // namespace

void build(const BuildOptions& o, const Synthesizer& synthesize) {
  LOOM_CHECK(!o.out.empty(), "trimodal::build: no output directory given");
  LOOM_CHECK(o.train_scenes >= 1 && o.eval_scenes >= 1 && o.train_videos >= 0 && o.eval_videos >= 0,
             "trimodal::build: need at least one scene per split and no negative counts (got train ", o.train_scenes,
             ", eval ", o.eval_scenes, " scenes; ", o.train_videos, ", ", o.eval_videos, " videos)");
  LOOM_CHECK(synthesize, "trimodal::build: no speech synthesizer given");
  const auto need = [&](const std::string& name) {
    const std::string path = o.fashion_dir + "/" + name;
    LOOM_CHECK(std::filesystem::exists(path), "trimodal::build: ", path,
               " is missing; install the Debian package dataset-fashion-mnist (scripts/install-deps.sh)");
    return read_idx(path);
  };
  Split splits[2] = {{"train", true, o.train_scenes, o.train_videos, need("train-images-idx3-ubyte.gz"),
                      need("train-labels-idx1-ubyte.gz")},
                     {"eval", false, o.eval_scenes, o.eval_videos, need("t10k-images-idx3-ubyte.gz"),
                      need("t10k-labels-idx1-ubyte.gz")}};
  io::AtomicDir out(o.out);
  Progress progress(o.progress);
  json counts;
  for (const Split& sp : splits) counts[sp.name] = build_split(o, sp, out.file(sp.name), synthesize, progress);

  json held = json::array();
  for (const auto& [colour, cls] : held_out_pairs(o.seed))
    held.push_back({{"colour", colour}, {"class", cls}, {"colour_en", colours()[colour].en},
                    {"class_en", class_names_en()[cls]}});
  json colour_en = json::array(), colour_zh = json::array(), rgb = json::array();
  for (const Colour& c : colours()) {
    colour_en.push_back(c.en);
    colour_zh.push_back(c.zh);
    rgb.push_back({c.rgb[0], c.rgb[1], c.rgb[2]});
  }
  json manifest = {{"format", "loom-trimodal"},
                   {"version", 1},
                   {"seed", o.seed},
                   {"counts", counts},
                   {"held_out", held},
                   {"classes", {{"en", class_names_en()}, {"zh", class_names_zh()}}},
                   {"colours", {{"en", colour_en}, {"zh", colour_zh}, {"rgb", rgb}}},
                   {"positions", position_names()},
                   {"directions", direction_names()},
                   {"image_size", kSide},
                   {"video_frames", kVideoFrames},
                   {"sample_rate", kSampleRate},
                   {"sources", {{"train", "Fashion-MNIST train split"}, {"eval", "Fashion-MNIST test split (t10k)"}}}};
  io::atomic_write_file(out.file("manifest.json"), manifest.dump(2) + "\n");
  // One syncfs makes every file durable (the WAVs were written plainly), then
  // the directories are fsync'ed and the whole tree renamed into place.
  const int fd = ::open(out.path().c_str(), O_RDONLY | O_DIRECTORY);
  LOOM_CHECK(fd >= 0, "trimodal: cannot open ", out.path());
  const int rc = ::syncfs(fd);
  ::close(fd);
  LOOM_CHECK(rc == 0, "trimodal: syncfs of ", out.path(), " failed");
  for (const Split& sp : splits) {
    io::fsync_dir(out.file(sp.name) + "/audio");
    io::fsync_dir(out.file(sp.name));
  }
  out.commit();
}

}  // namespace loom::data::trimodal
