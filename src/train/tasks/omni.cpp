// Task "omni": contrastive image/audio/video-text learning, captioning and
// transcription through the text decoder, image-text matching with hard
// negatives, masked language modelling and masked audio-feature regression,
// weighted by model.losses (a weight of 0 drops the objective and freezes
// the parts only it uses).
#include "train/tasks/omni.hpp"

#include <filesystem>
#include <set>

#include "loom/autograd/grad_mode.hpp"
#include "loom/dist/process_group.hpp"
#include "loom/omni/losses.hpp"
#include "loom/omni/metrics.hpp"
#include "loom/omni/features.hpp"
#include "loom/ops/ops.hpp"

namespace fs = std::filesystem;

namespace loom::train::omni_task {

namespace tm = data::trimodal;

// Where the recipe computes the speech features (data.speech_features).
SpeechInput speech_input(const Json& r) {
  const std::string where = r["data"].value("speech_features", std::string("host"));
  LOOM_CHECK(where == "host" || where == "device", "recipe: data.speech_features is '", where,
             "', expected host or device");
  return where == "device" ? SpeechInput::samples : SpeechInput::features;
}

std::shared_ptr<OmniScenes> open_scenes(const Json& r, const std::string& split, int64_t limit) {
  const std::string root = r["data"]["root"];
  LOOM_CHECK(fs::exists(fs::path(root) / "manifest.json"), "recipe: data.root '", root,
             "' holds no tri-modal dataset (build it: loom-data trimodal --out ", root, ")");
  return std::make_shared<OmniScenes>(root, split, r["model"]["mel_frames"].get<int64_t>(), limit,
                                      r["data"].value("speech_cache_mb", int64_t{0}), speech_input(r));
}

Vocabulary omni_vocabulary(const std::string& run_dir, const OmniScenes& scenes, int64_t vocab_size) {
  const fs::path saved = fs::path(run_dir) / "tokenizer.json";
  if (!run_dir.empty() && fs::exists(saved)) return Vocabulary(data::BpeTokenizer::load(saved.string()));
  std::vector<std::string> texts;
  for (const auto& rec : scenes.scenes().records()) {
    for (const auto& t : tm::paraphrases_en(rec.items)) texts.push_back(t);
    for (const auto& t : tm::paraphrases_zh(rec.items)) texts.push_back(t);
    texts.push_back(rec.en);
    texts.push_back(rec.zh);
  }
  for (const auto& v : scenes.videos()) {
    texts.push_back(v.en);
    texts.push_back(v.zh);
  }
  data::BpeTrainOptions o;
  o.special_tokens = Vocabulary::specials();
  return Vocabulary(data::BpeTokenizer::train(texts, static_cast<int>(vocab_size), o));
}

std::shared_ptr<omni::OmniModel> make_omni_model(const Json& m, const Vocabulary& vocab, Generator* gen) {
  omni::OmniConfig config = omni::OmniConfig::from_json(m);
  config.vocab_size = vocab.bpe.vocab_size();
  config.pad_id = vocab.pad;
  return std::make_shared<omni::OmniModel>(config, gen);
}

namespace {

// Decoder input [bos, caption] and target [caption, eos], -100 after.
std::pair<Tensor, Tensor> decoder_batch(const Vocabulary& vocab, const std::vector<std::string>& texts,
                                        const std::vector<bool>& zh, int64_t max_len) {
  const int64_t b = static_cast<int64_t>(texts.size());
  std::vector<int64_t> in(b * max_len, vocab.pad), target(b * max_len, -100);
  for (int64_t r = 0; r < b; ++r) {
    const auto ids = vocab.ids(texts[r], max_len - 1);
    in[r * max_len] = zh[r] ? vocab.bos_zh : vocab.bos_en;
    for (size_t k = 0; k < ids.size(); ++k) {
      in[r * max_len + k + 1] = ids[k];
      target[r * max_len + k] = ids[k];
    }
    target[r * max_len + ids.size()] = vocab.eos;
  }
  return {from_vector(in, {b, max_len}), from_vector(target, {b, max_len})};
}

// The caption of `items` in one language: the main form (form < 0) or paraphrase `form`.
std::string caption_text(const std::vector<tm::Item>& items, bool zh, int64_t form) {
  if (form < 0) return zh ? tm::caption_zh(items) : tm::caption_en(items);
  const auto paras = zh ? tm::paraphrases_zh(items) : tm::paraphrases_en(items);
  return paras[static_cast<size_t>(form)];
}

// A scene's layout: its items' colours and positions, in order, class aside.
int64_t layout_key(const std::vector<tm::Item>& items) {
  constexpr int64_t kPerItem = int64_t{tm::kNumColours} * tm::kNumPositions + 1;  // + 1: no item
  int64_t key = 0;
  for (const tm::Item& it : items) key = key * kPerItem + 1 + int64_t{it.colour} * tm::kNumPositions + it.position;
  return key;
}

// The training loader; with data.layout_group g > 1 it draws the scenes in
// groups of g sharing a layout, so each scene meets g - 1 in-batch negatives
// that only its items' classes tell apart.
data::LoaderOptions scene_loader_options(const Json& r, const TaskContext& context, const OmniScenes& scenes) {
  data::LoaderOptions lo = training_loader_options(r, context);
  lo.group_size = r["data"]["layout_group"];
  LOOM_CHECK(lo.group_size >= 1 && lo.batch_size % lo.group_size == 0, "recipe: data.layout_group ", lo.group_size,
             " must be >= 1 and divide train.batch_size ", lo.batch_size);
  if (lo.group_size > 1)
    for (int64_t i = 0; i < scenes.size(); ++i) lo.group_keys.push_back(layout_key(scenes.scenes().records()[i].items));
  return lo;
}

class OmniTask : public Task {
 public:
  OmniTask(const Json& r, const TaskContext& context) : recipe_(r), device_(context.device) {
    const Json& d = r["data"];
    LOOM_CHECK(d["dataset"] == "trimodal", "recipe: data.dataset '", d["dataset"].get<std::string>(),
               "' is not supported by model.kind omni (trimodal)");
    const int64_t frames = r["model"]["mel_frames"];
    train_ = open_scenes(r, "train", d["train_limit"]);
    eval_ = std::make_shared<OmniScenes>(d["root"].get<std::string>(), "eval", frames, d["eval_limit"], 0,
                                         speech_input(r));
    vocab_ = std::make_unique<Vocabulary>(omni_vocabulary(context.run_dir, *train_, r["model"]["vocab_size"]));
    model_ = make_omni_model(r["model"], *vocab_, &gen_);
    weights_ = r["model"]["losses"];
    for (const auto& rec : train_->scenes().records())
      for (const auto& item : rec.items) trained_pairs_.insert({item.colour, item.cls});
    freeze_unused();
    if (context.world_size > 1) group_ = dist::init_distributed();
    loader_ = std::make_unique<data::DataLoader>(train_, scene_loader_options(r, context, *train_));
  }

  nn::Module& model() override { return *model_; }
  data::DataLoader& loader() override { return *loader_; }
  std::string unit() const override { return "samples"; }
  std::vector<Generator*> generators() override { return {&gen_}; }
  void save_artifacts(const std::string& run_dir) override {
    vocab_->bpe.save((fs::path(run_dir) / "tokenizer.json").string());
  }

  LossResult loss(const data::Batch& b) override;

  Json evaluate(int64_t max_batches) override {
    (void)max_batches;  // the eval section's limits apply instead
    return evaluate_omni({*model_, *vocab_, *eval_, recipe_, device_});
  }

 private:
  double weight(const char* name) const { return weights_[name].get<double>(); }

  // Which parts the weighted objectives use.
  struct Uses {
    bool image, text, audio, video, decoder, proj_image, proj_text, proj_audio;
  };
  Uses uses() const {
    auto on = [&](const char* name) { return weight(name) > 0; };
    Uses u{};
    u.image = on("image_text_contrastive") || on("image_audio_contrastive") || on("caption") || on("joint_caption") ||
              on("matching") || on("class_negatives");
    u.text = on("image_text_contrastive") || on("audio_contrastive") || on("video_contrastive") || on("matching") ||
             on("mlm") || on("class_negatives");
    u.audio = on("audio_contrastive") || on("image_audio_contrastive") || on("transcript") || on("joint_caption") ||
              on("audio_regression");
    u.video = on("video_contrastive") || on("video_caption");
    u.decoder = on("caption") || on("transcript") || on("joint_caption") || on("video_caption");
    u.proj_image = on("image_text_contrastive") || on("image_audio_contrastive") || on("class_negatives");
    u.proj_text = on("image_text_contrastive") || on("audio_contrastive") || on("video_contrastive") ||
                  on("class_negatives");
    u.proj_audio = on("audio_contrastive") || on("image_audio_contrastive");
    return u;
  }

  // Parameters no active objective reaches get no gradient, which data
  // parallelism would rightly report; they are frozen instead.
  void freeze_unused() {
    auto freeze = [](nn::Module& m) {
      for (auto& p : m.parameters()) p.requires_grad_(false);
    };
    const Uses u = uses();
    omni::OmniModel& m = *model_;
    if (!u.image) {  // the patch stem stays when video uses it
      freeze(*m.image->stack);
      for (auto& [name, p] : m.image->named_parameters(/*recurse=*/false)) p.requires_grad_(false);
      if (!u.video) freeze(*m.image->stem);
    }
    if (!u.text) freeze(*m.text);
    if (!u.audio) freeze(*m.audio);
    if (!u.video) freeze(*m.video);
    if (!u.decoder) freeze(*m.decoder);
    if (!u.proj_image) freeze(*m.proj_image);
    if (!u.proj_text) freeze(*m.proj_text);
    if (!u.proj_audio) freeze(*m.proj_audio);
    if (weight("video_contrastive") == 0) freeze(*m.proj_video);
    if (weight("matching") == 0) {
      freeze(*m.fusion);
      freeze(*m.match_head);
    }
    if (weight("audio_regression") == 0) freeze(*m.audio_regression);
    if (!u.proj_image && !u.proj_text && !u.proj_audio && weight("video_contrastive") == 0)
      m.logit_scale.requires_grad_(false);
    freeze(*m.classifier);  // trained by the omni_classify task
  }

  Json recipe_;
  Device device_;
  Generator gen_{recipe_["train"]["seed"].get<uint64_t>() + 0x6f6d6e69ull};
  std::shared_ptr<OmniScenes> train_, eval_;
  std::unique_ptr<Vocabulary> vocab_;
  std::shared_ptr<omni::OmniModel> model_;
  Json weights_;
  std::set<std::pair<int, int>> trained_pairs_;  // (colour, class) pairs that occur in training scenes
  dist::ProcessGroupPtr group_;
  std::unique_ptr<data::DataLoader> loader_;
};

Tensor sequence_loss(const Tensor& logits, const Tensor& targets, double smoothing) {
  CrossEntropyOptions o;
  o.label_smoothing = smoothing;
  return cross_entropy(logits.reshape({-1, logits.size(2)}), targets.reshape({-1}), o);
}

LossResult OmniTask::loss(const data::Batch& b) {
  omni::OmniModel& m = *model_;
  const Json& d = recipe_["data"];
  const int64_t rows = b[0].size(0), len = m.config.text_len;
  const double smoothing = d["label_smoothing"];
  // Per row: the language, and whether the text is a paraphrase (which one).
  const Tensor u_lang = rand({rows}, {}, &gen_), u_para = rand({rows}, {}, &gen_);
  std::vector<bool> zh(rows);
  std::vector<int64_t> form(rows);  // -1: the main caption, else the paraphrase's index
  std::vector<std::string> texts, mains;
  std::vector<int64_t> keys(rows);
  const auto& records = train_->scenes().records();
  const auto record = [&](int64_t r) -> const tm::TrimodalDataset::Record& { return records[b[5].data<int64_t>()[r]]; };
  for (int64_t r = 0; r < rows; ++r) {
    const auto& rec = record(r);
    zh[r] = u_lang.data<float>()[r] < d["zh_prob"].get<double>();
    const float p = u_para.data<float>()[r];
    const double para_prob = d["paraphrase_prob"];
    const size_t n_forms = (zh[r] ? tm::paraphrases_zh(rec.items) : tm::paraphrases_en(rec.items)).size();
    form[r] = p < para_prob ? std::min<int64_t>(n_forms - 1, static_cast<int64_t>(p / para_prob * n_forms)) : -1;
    texts.push_back(caption_text(rec.items, zh[r], form[r]));
    mains.push_back(zh[r] ? rec.zh : rec.en);
    keys[r] = text_key(rec.en);
  }
  // The batch is assembled on the host (masks and negatives are drawn there);
  // what the model reads goes to its device.
  const auto on_device = [&](const Tensor& t) { return t.to(device_); };
  const Tensor key_t = on_device(from_vector(keys, {rows}));
  // Row r's speech in its language: row r of [English; Chinese] or row rows + r.
  std::vector<int64_t> pick(rows);
  for (int64_t r = 0; r < rows; ++r) pick[r] = zh[r] ? rows + r : r;
  const Tensor picked = from_vector(pick, {rows});
  const Tensor valid_host = index_select(cat({b[2], b[4]}, 0), 0, picked);
  const Tensor valid = on_device(valid_host);
  const Tensor mel = train_->speech_features(index_select(cat({b[1], b[3]}, 0), 0, picked), valid, device_);

  Tensor total = zeros({}, TensorOptions().with_device(device_));
  auto add_term = [&](const char* name, auto&& term) {
    const double w = weight(name);
    if (w > 0) total = add(total, mul(term(), w));
  };

  const Uses u = uses();
  omni::Encoded img, txt, aud;
  Tensor image_emb, text_emb, masked_frames;
  if (u.image) img = m.image->encode(on_device(b[0]));
  if (u.text) txt = m.text->encode(on_device(vocab_->batch(texts, len)));
  if (u.proj_image) image_emb = m.embed(omni::Modality::image, img);
  if (u.proj_text) text_emb = m.embed(omni::Modality::text, txt);
  if (u.audio) {
    Tensor input = mel;
    if (weight("audio_regression") > 0) {
      masked_frames = on_device(omni::span_mask(valid_host, d["audio_mask_prob"], 4, &gen_));
      input = masked_fill(mel, masked_frames.unsqueeze(2), 0.0);
    }
    aud = m.audio->encode(input, valid);
  }
  add_term("image_text_contrastive",
           [&] { return omni::info_nce(image_emb, text_emb, m.logit_scale, key_t, group_); });
  add_term("audio_contrastive", [&] {
    return omni::info_nce(m.embed(omni::Modality::audio, aud), text_emb, m.logit_scale, key_t, group_);
  });
  add_term("image_audio_contrastive", [&] {
    return omni::info_nce(image_emb, m.embed(omni::Modality::audio, aud), m.logit_scale, key_t, group_);
  });
  // (not a structured binding: clang before 16 cannot capture those in lambdas)
  const std::pair<Tensor, Tensor> dec = decoder_batch(*vocab_, mains, zh, len);
  const Tensor dec_in = on_device(dec.first);
  const Tensor dec_target = on_device(dec.second);
  add_term("caption", [&] { return sequence_loss(m.decoder->forward(dec_in, img), dec_target, smoothing); });
  add_term("transcript", [&] { return sequence_loss(m.decoder->forward(dec_in, aud), dec_target, smoothing); });
  add_term("joint_caption",
           [&] { return sequence_loss(m.decoder->forward(dec_in, omni::concat({img, aud})), dec_target, smoothing); });
  add_term("audio_regression", [&] {
    const int64_t frames = mel.size(1);
    Tensor pred = m.audio_regression->forward(aud.tokens);  // [B, T, 4 * C]
    pred = pred.reshape({rows, pred.size(1) * 4, m.config.n_mels}).narrow(1, 0, frames);
    return omni::masked_mse(pred, mel, masked_frames);
  });
  add_term("mlm", [&] {
    auto [inputs, targets] = omni::mask_tokens(vocab_->batch(texts, len), d["mlm_prob"], vocab_->mask,
                                               vocab_->first_special, &gen_);
    // a batch where nothing was chosen contributes zero (and keeps the graph alive)
    if (sum(ne(targets, full({}, -100.0, DType::i64))).item<int64_t>() == 0)
      return mul(sum(m.text->token_weight()), 0.0);
    const omni::Encoded masked = m.text->encode(on_device(inputs));
    return sequence_loss(matmul(masked.tokens, m.text->token_weight().transpose(0, 1)), on_device(targets), 0.0);
  });
  add_term("class_negatives", [&] {
    // Each image picks its caption among K copies in which one item's class
    // was changed (same colour, position, language and form). Colour and
    // position single a scene out of a batch on their own; these negatives
    // differ in the class alone, so only class features can tell them apart.
    const int64_t k = d["class_negatives_per_row"];
    const Tensor which = rand({rows, k}, {}, &gen_);
    const Tensor shift = randint(1, tm::kNumClasses, {rows, k}, DType::i64, &gen_);
    std::vector<std::string> negatives;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < k; ++j) {
        std::vector<tm::Item> items = record(r).items;
        tm::Item& item = items[std::min(items.size() - 1, static_cast<size_t>(which.data<float>()[r * k + j] * items.size()))];
        // the drawn class, or the next one whose pair with this colour occurs
        // in training, so that no held-out pair is ever shown (when a tiny
        // dataset has none, the drawn class)
        const int original = item.cls;
        const int64_t drawn = shift.data<int64_t>()[r * k + j];
        item.cls = static_cast<int>((original + drawn) % tm::kNumClasses);
        for (int64_t step = drawn; step < drawn + tm::kNumClasses; ++step) {
          const int cls = static_cast<int>((original + step) % tm::kNumClasses);
          if (cls != original && trained_pairs_.count({item.colour, cls})) {
            item.cls = cls;
            break;
          }
        }
        negatives.push_back(caption_text(items, zh[r], form[r]));
      }
    const Tensor negative_emb =
        m.embed(omni::Modality::text, m.text->encode(on_device(vocab_->batch(negatives, len))));
    const Tensor candidates = cat({omni::unit_rows(text_emb).unsqueeze(1),
                                   omni::unit_rows(negative_emb).reshape({rows, k, negative_emb.size(1)})},
                                  1);  // [rows, 1 + k, E], the true caption first
    const Tensor logits = mul(sum(mul(omni::unit_rows(image_emb).unsqueeze(1), candidates), {2}),
                              omni::temperature_scale(m.logit_scale.reshape({})));
    return cross_entropy(logits, zeros({rows}, TensorOptions(DType::i64).with_device(device_)));
  });
  add_term("matching", [&] {
    // hard negatives: for each image the most similar text of another scene
    Tensor similarity;
    {
      NoGradGuard no_grad;
      similarity = matmul(m.embed(omni::Modality::image, img), m.embed(omni::Modality::text, txt).transpose(0, 1));
    }
    const Tensor negatives = omni::hardest_negatives(similarity, key_t, key_t);
    omni::Encoded neg{index_select(txt.tokens, 0, negatives), index_select(txt.mask, 0, negatives), Tensor()};
    const Tensor pooled = cat({m.fusion->forward({txt, img}).pooled, m.fusion->forward({neg, img}).pooled}, 0);
    std::vector<int64_t> labels(2 * rows, 0);
    std::fill(labels.begin(), labels.begin() + rows, 1);
    return cross_entropy(m.match_head->forward(pooled), on_device(from_vector(labels, {2 * rows})));
  });
  const int64_t video_rows = std::min<int64_t>(rows, d["video_batch"].get<int64_t>());
  if (video_rows > 0 && (weight("video_contrastive") > 0 || weight("video_caption") > 0)) {
    std::vector<std::string> vtexts;
    std::vector<int64_t> vkeys;
    for (int64_t r = 0; r < video_rows; ++r) {
      const auto& v = train_->videos()[b[7].data<int64_t>()[r]];
      vtexts.push_back(zh[r] ? v.zh : v.en);
      vkeys.push_back(text_key(v.en));
    }
    const omni::Encoded vid = m.video->encode(on_device(b[6].narrow(0, 0, video_rows)));
    add_term("video_contrastive", [&] {
      const omni::Encoded vt = m.text->encode(on_device(vocab_->batch(vtexts, len)));
      return omni::info_nce(m.embed(omni::Modality::video, vid), m.embed(omni::Modality::text, vt), m.logit_scale,
                            on_device(from_vector(vkeys, {video_rows})), group_);
    });
    add_term("video_caption", [&] {
      const auto [vin, vtarget] =
          decoder_batch(*vocab_, vtexts, std::vector<bool>(zh.begin(), zh.begin() + video_rows), len);
      return sequence_loss(m.decoder->forward(on_device(vin), vid), on_device(vtarget), smoothing);
    });
  }
  return {total, rows};
}

}  // namespace

Json omni_model_schema() {
  return Json{{"kind", "omni"},
                {"vocab_size", 512},
                {"d_model", 64},
                {"n_heads", 4},
                {"mlp_ratio", 2},
                {"dropout", 0.0},
                {"embed_dim", 64},
                {"text_layers", 2},
                {"image_layers", 2},
                {"audio_layers", 2},
                {"video_layers", 1},
                {"fusion_layers", 1},
                {"decoder_layers", 2},
                {"text_len", 24},
                {"image_size", 64},
                {"patch", 8},
                {"image_stem", "patch"},
                {"n_mels", 80},
                {"mel_frames", 512},
                {"video_frames", 8},
                {"video_grid", 2},
                {"fusion", "joint"},
                {"classes", 10},
                {"prompt_tokens", 0},
                {"losses",
                 {{"image_text_contrastive", 1.0},
                  {"audio_contrastive", 1.0},
                  {"image_audio_contrastive", 0.0},
                  {"video_contrastive", 0.5},
                  {"caption", 1.0},
                  {"transcript", 1.0},
                  {"joint_caption", 0.0},
                  {"video_caption", 0.5},
                  {"matching", 0.5},
                  {"mlm", 0.2},
                  {"audio_regression", 0.2},
                  {"class_negatives", 0.0}}}};
}

Json omni_schema() {
  return Json{{"model", omni_model_schema()},
              {"data",
               {{"dataset", "trimodal"},
                {"root", "data/trimodal"},
                {"train_limit", 0},
                {"eval_limit", 0},
                {"zh_prob", 0.5},
                {"paraphrase_prob", 0.3},
                {"layout_group", 1},
                {"video_batch", 8},
                {"mlm_prob", 0.15},
                {"audio_mask_prob", 0.1},
                {"class_negatives_per_row", 3},
                {"speech_cache_mb", 1024},
                {"speech_features", "host"},
                {"label_smoothing", 0.1}}},
              {"eval",
               {{"max_batches", 0},
                {"zero_shot_limit", 0},
                {"zero_shot_split", "test"},
                {"decode_limit", 0},
                {"beam_size", 1}}}};
}

std::unique_ptr<Task> make_omni(const Json& resolved, const TaskContext& context) {
  return std::make_unique<OmniTask>(resolved, context);
}

}  // namespace loom::train::omni_task
