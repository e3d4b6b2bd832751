// loom-data: builds datasets.
//
//   loom-data trimodal --out DIR [--scenes N] [--eval-scenes M] [--videos V] [--eval-videos W] [--seed S] [--small]
//       the tri-modal bilingual scene dataset (loom/data/trimodal.hpp, docs/data.md)
//   loom-data say --text TEXT --voice en|cmn [--rate R] [--pitch P] --out FILE.wav
//       one utterance through the same espeak-ng path (16 kHz), for checks
//
// Speech comes from libespeak-ng through its C API (linked into this program
// only, not the library). espeak-ng keeps global state and is not
// thread-safe, so every call goes through one thread.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli.hpp"
#include "loom/audio/resample.hpp"
#include "loom/core/error.hpp"
#include "loom/data/trimodal.hpp"

#ifdef LOOM_HAVE_ESPEAK
#include <espeak-ng/speak_lib.h>
#endif

namespace {

constexpr const char* kUsage =
    "usage: loom-data trimodal --out DIR [--scenes N] [--eval-scenes M] [--videos V] [--eval-videos W] [--seed S] "
    "[--small] [--quiet]\n"
    "       loom-data say --text TEXT --voice en|cmn [--rate 175] [--pitch 50] --out FILE.wav\n"
    "defaults: 4000 train + 1000 eval scenes, 1000 + 250 videos, seed 0; --small: 64 + 32 scenes, 16 + 8 videos\n";

#ifdef LOOM_HAVE_ESPEAK
std::vector<short>* g_samples = nullptr;  // the buffer the callback fills (one thread)

int collect(short* wav, int n, espeak_EVENT*) {
  if (wav && n > 0 && g_samples) g_samples->insert(g_samples->end(), wav, wav + n);
  return 0;
}

class Espeak {
 public:
  Espeak() {
    rate_ = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, nullptr, 0);
    LOOM_CHECK(rate_ > 0, "loom-data: espeak_Initialize failed (", rate_,
               "); is the espeak-ng-data of the Debian package espeak-ng installed?");
    espeak_SetSynthCallback(collect);
  }
  ~Espeak() { espeak_Terminate(); }

  loom::audio::Wav operator()(const loom::data::trimodal::SpeechRequest& r) {
    if (r.voice != voice_) {
      LOOM_CHECK(espeak_SetVoiceByName(r.voice.c_str()) == EE_OK, "loom-data: espeak-ng has no voice '", r.voice,
                 "' (the Debian package espeak-ng-data provides en and cmn)");
      voice_ = r.voice;
    }
    LOOM_CHECK(espeak_SetParameter(espeakRATE, r.rate, 0) == EE_OK, "loom-data: espeak rate ", r.rate, " rejected");
    LOOM_CHECK(espeak_SetParameter(espeakPITCH, r.pitch, 0) == EE_OK, "loom-data: espeak pitch ", r.pitch,
               " rejected");
    std::vector<short> samples;
    g_samples = &samples;
    const espeak_ERROR err = espeak_Synth(r.text.c_str(), r.text.size() + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8,
                                          nullptr, nullptr);
    espeak_Synchronize();
    g_samples = nullptr;
    LOOM_CHECK(err == EE_OK, "loom-data: espeak_Synth failed (", static_cast<int>(err), ") for '", r.text, "'");
    loom::audio::Wav wav;
    wav.sample_rate = rate_;
    wav.channels = 1;
    wav.samples.assign(samples.begin(), samples.end());
    return wav;
  }

 private:
  int rate_ = 0;
  std::string voice_;
};
#else
struct Espeak {
  Espeak() {
    LOOM_FAIL("loom-data: built without libespeak-ng (CMake did not find espeak-ng/speak_lib.h and libespeak-ng); "
              "install the Debian packages espeak-ng and libespeak-ng-dev (scripts/install-deps.sh) and rebuild");
  }
  loom::audio::Wav operator()(const loom::data::trimodal::SpeechRequest&) { return {}; }
};
#endif

int64_t count_arg(int argc, char** argv, int& i) {
  const std::string flag = argv[i], v = loom::cli::take_value(argc, argv, i);
  try {
    size_t used = 0;
    const long long n = std::stoll(v, &used);
    if (used == v.size() && n >= 0) return n;
  } catch (const std::exception&) {
  }
  throw loom::cli::UsageError{flag + " needs a non-negative integer, got '" + v + "'\n" + kUsage};
}

int trimodal(int argc, char** argv) {
  loom::data::trimodal::BuildOptions o;
  bool small = false;
  int64_t scenes = -1, eval_scenes = -1, videos = -1, eval_videos = -1;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out") o.out = loom::cli::take_value(argc, argv, i);
    else if (a == "--scenes") scenes = count_arg(argc, argv, i);
    else if (a == "--eval-scenes") eval_scenes = count_arg(argc, argv, i);
    else if (a == "--videos") videos = count_arg(argc, argv, i);
    else if (a == "--eval-videos") eval_videos = count_arg(argc, argv, i);
    else if (a == "--seed") o.seed = static_cast<uint64_t>(count_arg(argc, argv, i));
    else if (a == "--small") small = true;
    else if (a == "--quiet") o.progress = false;
    else throw loom::cli::UsageError{"unknown option '" + a + "'\n" + kUsage};
  }
  if (o.out.empty()) throw loom::cli::UsageError{std::string("trimodal needs --out DIR\n") + kUsage};
  if (small) {
    o.train_scenes = 64, o.eval_scenes = 32, o.train_videos = 16, o.eval_videos = 8;
  }
  if (scenes >= 0) o.train_scenes = scenes;
  if (eval_scenes >= 0) o.eval_scenes = eval_scenes;
  if (videos >= 0) o.train_videos = videos;
  if (eval_videos >= 0) o.eval_videos = eval_videos;
  Espeak espeak;
  loom::data::trimodal::build(o, [&](const loom::data::trimodal::SpeechRequest& r) { return espeak(r); });
  std::printf("loom-data: wrote %s (%lld + %lld scenes, %lld + %lld videos, seed %llu)\n", o.out.c_str(),
              static_cast<long long>(o.train_scenes), static_cast<long long>(o.eval_scenes),
              static_cast<long long>(o.train_videos), static_cast<long long>(o.eval_videos),
              static_cast<unsigned long long>(o.seed));
  return 0;
}

int say(int argc, char** argv) {
  loom::data::trimodal::SpeechRequest r;
  std::string out;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--text") r.text = loom::cli::take_value(argc, argv, i);
    else if (a == "--voice") r.voice = loom::cli::take_value(argc, argv, i);
    else if (a == "--rate") r.rate = static_cast<int>(count_arg(argc, argv, i));
    else if (a == "--pitch") r.pitch = static_cast<int>(count_arg(argc, argv, i));
    else if (a == "--out") out = loom::cli::take_value(argc, argv, i);
    else throw loom::cli::UsageError{"unknown option '" + a + "'\n" + kUsage};
  }
  if (r.text.empty() || r.voice.empty() || out.empty())
    throw loom::cli::UsageError{std::string("say needs --text, --voice and --out\n") + kUsage};
  Espeak espeak;
  const loom::audio::Wav raw = espeak(r);
  const auto x = loom::audio::resample(loom::audio::to_mono_float(raw), raw.sample_rate,
                                       loom::data::trimodal::kSampleRate);
  loom::audio::write_wav(out, loom::audio::from_float(x, loom::data::trimodal::kSampleRate));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return loom::cli::run_main("loom-data", [&] {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "--help" || cmd == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (cmd == "trimodal") return trimodal(argc, argv);
    if (cmd == "say") return say(argc, argv);
    throw loom::cli::UsageError{"expected a command (trimodal or say)\n" + std::string(kUsage)};
  });
}
