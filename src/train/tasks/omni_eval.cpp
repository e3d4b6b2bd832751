// Evaluation of the omni task on the held-out split: retrieval in every
// direction, zero-shot Fashion-MNIST from text prompts, compositional
// zero-shot on held-out colour x class pairs, captioning and transcription,
// in English and Chinese; each figure next to its chance level.
//
// Names: English figures carry the blueprint's names (i2t_r1, asr_cer, ...),
// Chinese ones the suffix _zh.
#include <algorithm>
#include <map>

#include "loom/autograd/grad_mode.hpp"
#include "loom/data/idx.hpp"
#include "loom/omni/losses.hpp"
#include "loom/omni/metrics.hpp"
#include "loom/omni/features.hpp"
#include "loom/ops/ops.hpp"
#include "train/tasks/omni.hpp"

namespace loom::train::omni_task {

namespace tm = data::trimodal;

namespace {

constexpr int64_t kBatch = 100;
constexpr int64_t kExamples = 6;  // scenes and videos shown in eval.json "examples"
constexpr int kWhite = 7;   // colours(): white, for the untinted Fashion-MNIST items
constexpr int kCenter = 4;  // position_names(): center

struct Out {
  Json metrics = Json::object(), chance = Json::object(), n = Json::object();
  void put(const std::string& name, double value, double chance_value, int64_t count) {
    metrics[name] = value;
    chance[name] = chance_value;
    n[name] = count;
  }
};

// Rows [begin, end) of a batch-building function, concatenated.
template <class Fn>
Tensor batched(int64_t count, Fn&& rows) {
  std::vector<Tensor> parts;
  for (int64_t s = 0; s < count; s += kBatch) parts.push_back(rows(s, std::min(count, s + kBatch)));
  return cat(parts, 0);
}

class Evaluator {
 public:
  explicit Evaluator(const EvalContext& c)
      : c_(c), m_(c.model), len_(c.model.config.text_len), n_(c.eval.size()) {
    const Json& e = c.recipe["eval"];
    decode_n_ = e["decode_limit"].get<int64_t>() > 0 ? std::min(n_, e["decode_limit"].get<int64_t>()) : n_;
    zero_shot_limit_ = e["zero_shot_limit"];
    zero_shot_split_ = e["zero_shot_split"];
    LOOM_CHECK(zero_shot_split_ == "test" || zero_shot_split_ == "train", "recipe: eval.zero_shot_split '",
               zero_shot_split_, "' is not one of test, train");
    decode_.beam_size = e["beam_size"];
    decode_.max_tokens = len_ - 1;
  }

  Json run() {
    NoGradGuard no_grad;
    m_.eval();
    retrieval();
    zero_shot();
    compositional();
    generation();
    m_.train();
    return Json{{"metrics", out_.metrics},
                {"chance", out_.chance},
                {"n", out_.n},
                {"examples", {{"scenes", scene_examples_}, {"videos", video_examples_}}}};
  }

 private:
  const auto& record(int64_t i) const { return c_.eval.scenes().records()[i]; }
  Tensor on_device(const Tensor& t) const { return t.to(c_.device); }

  Tensor text_embeddings(const std::vector<std::string>& texts) {
    return batched(static_cast<int64_t>(texts.size()), [&](int64_t a, int64_t b) {
      std::vector<std::string> part(texts.begin() + a, texts.begin() + b);
      return m_.embed(omni::Modality::text, m_.text->encode(on_device(c_.vocab.batch(part, len_))));
    });
  }

  // The clips of videos [a, b), stacked.
  Tensor videos(int64_t a, int64_t b) {
    std::vector<Tensor> clips;
    for (int64_t i = a; i < b; ++i) clips.push_back(c_.eval.video(i));
    return on_device(stack(clips, 0));
  }

  // The images of scenes [a, b), stacked.
  Tensor images(int64_t a, int64_t b) {
    std::vector<Tensor> rows;
    for (int64_t i = a; i < b; ++i) rows.push_back(c_.eval.image(i));
    return on_device(stack(rows, 0));
  }

  omni::Encoded audio(int64_t a, int64_t b, bool zh) {
    std::vector<Tensor> speech, valid;
    for (int64_t i = a; i < b; ++i) {
      Tensor v;
      speech.push_back(c_.eval.speech(i, zh, &v));
      valid.push_back(v);
    }
    const Tensor valid_t = on_device(stack(valid, 0));
    return m_.audio->encode(c_.eval.speech_features(stack(speech, 0), valid_t, c_.device), valid_t);
  }

  void put_recall(const std::string& name, const Tensor& q, const Tensor& g, const std::vector<int64_t>& qk,
                  const std::vector<int64_t>& gk, const std::string& suffix) {
    const omni::Recall r = omni::recall_at_k(q, g, qk, gk);
    for (size_t k = 0; k < r.ks.size(); ++k)
      out_.put(name + "_r" + std::to_string(r.ks[k]) + suffix, r.recall[k], r.chance[k], q.size(0));
  }

  Json& scene_example(int64_t i) {
    while (static_cast<int64_t>(scene_examples_.size()) <= i)
      scene_examples_.push_back({{"index", static_cast<int64_t>(scene_examples_.size())}});
    return scene_examples_[i];
  }

  // The best caption (by cosine similarity) of each of the first example images.
  void note_nearest(const Tensor& images, const Tensor& texts, const std::vector<std::string>& captions,
                    const char* key) {
    const int64_t k = std::min(kExamples, images.size(0));
    const std::vector<int64_t> best =
        argmax(matmul(omni::unit_rows(images.narrow(0, 0, k)), omni::unit_rows(texts).transpose(0, 1)), 1)
            .to_vector<int64_t>();
    for (int64_t i = 0; i < k; ++i) scene_example(i)[key] = captions[best[i]];
  }

  void retrieval() {
    std::vector<int64_t> keys;
    std::vector<std::string> en, zh;
    for (int64_t i = 0; i < n_; ++i) {
      keys.push_back(text_key(record(i).en));
      en.push_back(record(i).en);
      zh.push_back(record(i).zh);
    }
    const Tensor image = batched(n_, [&](int64_t a, int64_t b) {
      return m_.embed(omni::Modality::image, m_.image->encode(images(a, b)));
    });
    image_emb_ = image;
    for (bool in_zh : {false, true}) {
      const std::string sfx = in_zh ? "_zh" : "";
      const Tensor text = text_embeddings(in_zh ? zh : en);
      const Tensor speech = batched(n_, [&](int64_t a, int64_t b) {
        return m_.embed(omni::Modality::audio, audio(a, b, in_zh));
      });
      put_recall("i2t", image, text, keys, keys, sfx);
      note_nearest(image, text, in_zh ? zh : en, in_zh ? "retrieved_zh" : "retrieved_en");
      put_recall("t2i", text, image, keys, keys, sfx);
      put_recall("a2t", speech, text, keys, keys, sfx);
      put_recall("t2a", text, speech, keys, keys, sfx);
      put_recall("i2a", image, speech, keys, keys, sfx);
      put_recall("a2i", speech, image, keys, keys, sfx);
    }
    const int64_t v = static_cast<int64_t>(c_.eval.videos().size());
    std::vector<int64_t> vkeys;
    std::vector<std::string> ven, vzh;
    for (const auto& r : c_.eval.videos()) {
      vkeys.push_back(text_key(r.en));
      ven.push_back(r.en);
      vzh.push_back(r.zh);
    }
    const Tensor video = batched(v, [&](int64_t a, int64_t b) {
      return m_.embed(omni::Modality::video, m_.video->encode(videos(a, b)));
    });
    for (bool in_zh : {false, true}) {
      const std::string sfx = in_zh ? "_zh" : "";
      const Tensor text = text_embeddings(in_zh ? vzh : ven);
      put_recall("v2t", video, text, vkeys, vkeys, sfx);
      put_recall("t2v", text, video, vkeys, vkeys, sfx);
    }
  }

  // Index of the best prompt group per image: prompts [G * per_group, E]
  // are averaged (as unit vectors) within each group of per_group.
  static std::vector<int64_t> classify(const Tensor& images, const Tensor& prompts, int64_t groups) {
    const Tensor protos = omni::unit_rows(mean(omni::unit_rows(prompts).reshape({groups, -1, prompts.size(1)}), {1}));
    const Tensor best = argmax(matmul(omni::unit_rows(images), protos.transpose(0, 1)), 1).contiguous();
    return best.to_vector<int64_t>();
  }

  void zero_shot() {
    // The test split by default; the training split (whose items the
    // pretraining scenes drew from) measures how much of the figure is memory.
    const std::string prefix =
        std::string(data::kFashionMnistDir) + (zero_shot_split_ == "train" ? "/train" : "/t10k");
    const Tensor images = data::read_idx(prefix + "-images-idx3-ubyte.gz");
    const Tensor labels = data::read_idx(prefix + "-labels-idx1-ubyte.gz");
    int64_t n = images.size(0);
    if (zero_shot_limit_ > 0) n = std::min(n, zero_shot_limit_);
    const Tensor emb = batched(n, [&](int64_t a, int64_t b) {
      std::vector<Tensor> rows;
      std::vector<uint8_t> rgb(tm::kSide * tm::kSide * 3);
      for (int64_t i = a; i < b; ++i) {
        tm::Scene scene;
        scene.items.push_back(tm::Item{static_cast<int>(labels.data<uint8_t>()[i]), kWhite, kCenter, i, 0, 0});
        std::fill(rgb.begin(), rgb.end(), 0);
        tm::render_scene(scene, images.data<uint8_t>(), rgb.data());
        rows.push_back(omni::image_from_rgb8(rgb.data(), tm::kSide, tm::kSide));
      }
      return m_.embed(omni::Modality::image, m_.image->encode(on_device(stack(rows, 0))));
    });
    for (bool zh : {false, true}) {
      // templates: every colour x (caption and paraphrases) of a centred item
      std::vector<std::string> prompts;
      for (int cls = 0; cls < tm::kNumClasses; ++cls) {
        std::vector<std::string> mine;
        for (int colour = 0; colour < tm::kNumColours; ++colour) {
          const std::vector<tm::Item> items{tm::Item{cls, colour, kCenter, 0, 0, 0}};
          mine.push_back(zh ? tm::caption_zh(items) : tm::caption_en(items));
          for (const auto& p : zh ? tm::paraphrases_zh(items) : tm::paraphrases_en(items)) mine.push_back(p);
        }
        prompts.insert(prompts.end(), mine.begin(), mine.end());
      }
      const auto pred = classify(emb, text_embeddings(prompts), tm::kNumClasses);
      int64_t correct = 0;
      for (int64_t i = 0; i < n; ++i) correct += pred[i] == labels.data<uint8_t>()[i];
      out_.put(zh ? "zero_shot_accuracy_zh" : "zero_shot_accuracy", static_cast<double>(correct) / n, 0.1, n);
    }
  }

  // Every colour x class caption of one item at `position`, as unit
  // embeddings [80, E] (colour-major); cached per language and position.
  const Tensor& pair_prompts(bool zh, int position) {
    Tensor& slot = pair_prompts_[zh][position];
    if (!slot.defined()) {
      std::vector<std::string> prompts;
      for (int colour = 0; colour < tm::kNumColours; ++colour)
        for (int cls = 0; cls < tm::kNumClasses; ++cls) {
          const std::vector<tm::Item> items{tm::Item{cls, colour, position, 0, 0, 0}};
          prompts.push_back(zh ? tm::caption_zh(items) : tm::caption_en(items));
        }
      slot = text_embeddings(prompts);
    }
    return slot;
  }

  // One-item evaluation scenes whose colour x class pair never occurs in
  // training: the caption with the right pair must win among all 80.
  void compositional() {
    std::vector<int64_t> scenes;
    for (int64_t i = 0; i < n_; ++i)
      if (record(i).held_out && record(i).items.size() == 1) scenes.push_back(i);
    if (scenes.empty()) return;
    const int pairs = tm::kNumColours * tm::kNumClasses;
    for (bool zh : {false, true}) {
      int64_t correct = 0;
      for (int64_t i : scenes) {
        const tm::Item& item = record(i).items[0];
        const auto pred = classify(image_emb_.narrow(0, i, 1), pair_prompts(zh, item.position), pairs);
        correct += pred[0] == item.colour * tm::kNumClasses + item.cls;
      }
      out_.put(zh ? "compositional_zero_shot_accuracy_zh" : "compositional_zero_shot_accuracy",
               static_cast<double>(correct) / static_cast<double>(scenes.size()), 1.0 / pairs,
               static_cast<int64_t>(scenes.size()));
    }
  }

  std::vector<std::string> decode(int64_t count, bool zh, const std::function<omni::Encoded(int64_t, int64_t)>& enc) {
    std::vector<std::string> out;
    for (int64_t s = 0; s < count; s += kBatch) {
      const int64_t e = std::min(count, s + kBatch);
      const std::vector<int32_t> start(e - s, zh ? c_.vocab.bos_zh : c_.vocab.bos_en);
      for (const auto& ids : m_.decoder->generate(enc(s, e), start, c_.vocab.eos, decode_))
        out.push_back(c_.vocab.decode(ids));
    }
    return out;
  }

  // The most frequent reference: the constant prediction chance is measured with.
  static std::string most_frequent(const std::vector<std::string>& refs) {
    std::map<std::string, int64_t> counts;
    for (const auto& r : refs) ++counts[r];
    return std::max_element(counts.begin(), counts.end(),
                            [](const auto& a, const auto& b) { return a.second < b.second; })
        ->first;
  }

  void put_match(const std::string& name, const std::vector<std::string>& hyp, const std::vector<std::string>& ref) {
    const std::string constant = most_frequent(ref);
    int64_t hits = 0, constant_hits = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      hits += hyp[i] == ref[i];
      constant_hits += constant == ref[i];
    }
    const double n = static_cast<double>(ref.size());
    out_.put(name, hits / n, constant_hits / n, static_cast<int64_t>(ref.size()));
  }

  void generation() {
    const int64_t n = decode_n_;
    const int64_t v = std::min<int64_t>(n, static_cast<int64_t>(c_.eval.videos().size()));
    for (bool zh : {false, true}) {
      const std::string sfx = zh ? "_zh" : "";
      std::vector<std::string> refs, vrefs;
      for (int64_t i = 0; i < n; ++i) refs.push_back(zh ? record(i).zh : record(i).en);
      for (int64_t i = 0; i < v; ++i) vrefs.push_back(zh ? c_.eval.videos()[i].zh : c_.eval.videos()[i].en);
      const auto captions = decode(n, zh, [&](int64_t a, int64_t b) { return m_.image->encode(images(a, b)); });
      put_match("caption_exact_match" + sfx, captions, refs);
      for (int64_t i = 0; i < std::min(kExamples, n); ++i) {
        scene_example(i)["reference" + std::string(zh ? "_zh" : "_en")] = refs[i];
        scene_example(i)["caption" + std::string(zh ? "_zh" : "_en")] = captions[i];
      }
      const auto transcripts = decode(n, zh, [&](int64_t a, int64_t b) { return audio(a, b, zh); });
      const std::vector<std::string> constant(refs.size(), most_frequent(refs));
      out_.put("asr_cer" + sfx, omni::char_error_rate(transcripts, refs), omni::char_error_rate(constant, refs), n);
      for (int64_t i = 0; i < std::min(kExamples, n); ++i)
        scene_example(i)["transcript" + std::string(zh ? "_zh" : "_en")] = transcripts[i];
      const auto vcaps = decode(v, zh, [&](int64_t a, int64_t b) {
        return m_.video->encode(videos(a, b));
      });
      put_match("video_caption_exact_match" + sfx, vcaps, vrefs);
      for (int64_t i = 0; i < std::min(kExamples, v); ++i) {
        while (static_cast<int64_t>(video_examples_.size()) <= i)
          video_examples_.push_back({{"index", static_cast<int64_t>(video_examples_.size())}});
        video_examples_[i]["reference" + std::string(zh ? "_zh" : "_en")] = vrefs[i];
        video_examples_[i]["caption" + std::string(zh ? "_zh" : "_en")] = vcaps[i];
      }
    }
  }

  const EvalContext& c_;
  omni::OmniModel& m_;
  int64_t len_, n_, decode_n_ = 0, zero_shot_limit_ = 0;
  std::string zero_shot_split_;
  omni::DecodeOptions decode_;
  Tensor image_emb_;
  Tensor pair_prompts_[2][tm::kNumPositions];
  Json scene_examples_ = Json::array(), video_examples_ = Json::array();
  Out out_;
};

}  // namespace

Json evaluate_omni(const EvalContext& context) { return Evaluator(context).run(); }

}  // namespace loom::train::omni_task
