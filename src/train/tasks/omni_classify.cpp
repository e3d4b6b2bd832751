// Task "omni_classify": Fashion-MNIST classification with the omni model's
// image encoder and classification head, on scenes rendered like the
// zero-shot evaluation (one white item in the centre of the 64x64 canvas),
// trained on a small labelled fraction of the training split. Started from a
// pretrained run (train.init_from) it measures what pretraining bought over
// the same model trained from scratch.
//
// With data.train_layout "scenes" the training images are laid out like the
// one-item pretraining scenes instead (a colour, a named position and a
// jitter of up to 2 pixels, fixed per image), while the test stays white and
// centred: trained on every label, this is the supervised reference for the
// zero-shot figure, the same encoder learning class from labels rather than
// from captions.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "loom/data/idx.hpp"
#include "loom/omni/features.hpp"
#include "loom/ops/ops.hpp"
#include "train/tasks/omni.hpp"

namespace loom::train::omni_task {

namespace tm = data::trimodal;

namespace {

constexpr int kWhite = 7, kCenter = 4;  // colours() and position_names() indices

// Where and how an item is drawn: white in the centre, or a layout drawn
// per image like a one-item pretraining scene (colour, position, jitter).
struct Layout {
  bool scenes = false;
  uint64_t seed = 0;
  std::set<std::pair<int, int>> allowed;  // (colour, class) pairs of the training scenes; empty: all
};

tm::Item place(int64_t src, int cls, const Layout& layout) {
  if (!layout.scenes) return tm::Item{cls, kWhite, kCenter, src, 0, 0};
  const std::array<uint32_t, 4> u = philox4x32(
      {static_cast<uint32_t>(src), static_cast<uint32_t>(src >> 32), 0, 0x6c61796fu},
      {static_cast<uint32_t>(layout.seed), static_cast<uint32_t>(layout.seed >> 32)});
  int colour = static_cast<int>(u[0] % tm::kNumColours);
  // the next colour whose pair with this class occurs in training, so that
  // held-out colour x class pairs stay held out
  for (int k = 0; k < tm::kNumColours && !layout.allowed.empty() && !layout.allowed.count({colour, cls}); ++k)
    colour = (colour + 1) % tm::kNumColours;
  return tm::Item{cls, colour, static_cast<int>(u[1] % tm::kNumPositions), src,
                  static_cast<int>(u[2] % 5) - 2, static_cast<int>(u[3] % 5) - 2};
}

// Fashion-MNIST images rendered as scenes: {image f32 [3, 64, 64], label i64 []}.
class RenderedFashion : public data::Dataset {
 public:
  RenderedFashion(const std::string& dir, bool train, std::vector<int64_t> indices, Layout layout = {})
      : indices_(std::move(indices)), layout_(std::move(layout)) {
    const std::string prefix = dir + (train ? "/train" : "/t10k");
    images_ = data::read_idx(prefix + "-images-idx3-ubyte.gz");
    labels_ = data::read_idx(prefix + "-labels-idx1-ubyte.gz");
    LOOM_CHECK(images_.dim() == 3 && images_.size(1) == 28 && labels_.size(0) == images_.size(0), "omni_classify: ",
               prefix, " is not a Fashion-MNIST split");
  }
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  data::Example get(int64_t i) const override {
    const int64_t src = indices_.at(i);
    tm::Scene scene;
    scene.items.push_back(place(src, label(src), layout_));
    std::vector<uint8_t> rgb(tm::kSide * tm::kSide * 3, 0);
    tm::render_scene(scene, images_.data<uint8_t>(), rgb.data());
    return {omni::image_from_rgb8(rgb.data(), tm::kSide, tm::kSide), scalar_tensor(label(src), DType::i64)};
  }
  int label(int64_t src) const { return labels_.data<uint8_t>()[src]; }
  int64_t split_size() const { return images_.size(0); }

 private:
  Tensor images_, labels_;
  std::vector<int64_t> indices_;
  Layout layout_;
};

std::vector<int64_t> first(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

// The first round(fraction * n_c) images of each class c, in a seeded order.
std::vector<int64_t> labelled_subset(const RenderedFashion& all, double fraction, uint64_t seed) {
  const int64_t n = all.split_size();
  Generator gen(seed);
  const Tensor keys = rand({n}, {}, &gen);  // a Philox order: the same on every machine
  std::vector<int64_t> order = first(n);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return keys.data<float>()[a] < keys.data<float>()[b]; });
  std::vector<std::vector<int64_t>> by_class(tm::kNumClasses);
  for (int64_t i : order) by_class[all.label(i)].push_back(i);
  std::vector<int64_t> out;
  for (const auto& c : by_class) {
    const auto take = static_cast<size_t>(std::max(1.0, std::round(fraction * static_cast<double>(c.size()))));
    out.insert(out.end(), c.begin(), c.begin() + std::min(take, c.size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

class OmniClassify : public Task {
 public:
  OmniClassify(const Json& r, const TaskContext& context) : recipe_(r), device_(context.device) {
    const Json& d = r["data"];
    const std::string dir = d["fashion_dir"];
    const double fraction = d["label_fraction"];
    LOOM_CHECK(fraction > 0 && fraction <= 1, "recipe: data.label_fraction ", fraction, " must be in (0, 1]");
    const std::string layout_name = d["train_layout"];
    LOOM_CHECK(layout_name == "center" || layout_name == "scenes", "recipe: data.train_layout '", layout_name,
               "' is not one of center, scenes");
    // The vocabulary only sizes the text parts, so that checkpoints of the
    // pretraining recipe load; the captions come from data.root.
    const auto scenes = open_scenes(r, "train", 0);
    Layout layout;
    layout.scenes = layout_name == "scenes";
    layout.seed = r["train"]["seed"].get<uint64_t>();
    for (const auto& rec : scenes->scenes().records())
      for (const auto& item : rec.items) layout.allowed.insert({item.colour, item.cls});
    auto everything = std::make_shared<RenderedFashion>(dir, true, std::vector<int64_t>{});
    train_ = std::make_shared<RenderedFashion>(dir, true, labelled_subset(*everything, fraction, r["train"]["seed"]),
                                               std::move(layout));
    auto probe = std::make_shared<RenderedFashion>(dir, false, std::vector<int64_t>{});
    const int64_t limit = d["test_limit"];
    test_ = std::make_shared<RenderedFashion>(
        dir, false, first(limit > 0 ? std::min(limit, probe->split_size()) : probe->split_size()));
    vocab_ = std::make_unique<Vocabulary>(omni_vocabulary(context.run_dir, *scenes, r["model"]["vocab_size"]));
    model_ = make_omni_model(r["model"], *vocab_, &gen_);
    // Only the image encoder and the head take part.
    for (auto& [name, p] : model_->named_parameters())
      if (name.rfind("image.", 0) != 0 && name.rfind("classifier.", 0) != 0) p.requires_grad_(false);
    loader_ = std::make_unique<data::DataLoader>(train_, training_loader_options(r, context));
  }

  nn::Module& model() override { return *model_; }
  data::DataLoader& loader() override { return *loader_; }
  std::string unit() const override { return "samples"; }
  std::vector<Generator*> generators() override { return {&gen_}; }
  void save_artifacts(const std::string& run_dir) override {
    vocab_->bpe.save((std::filesystem::path(run_dir) / "tokenizer.json").string());
  }

  Tensor logits(const Tensor& images) { return model_->classifier->forward(model_->image->encode(images).pooled); }

  LossResult loss(const data::Batch& b) override {
    CrossEntropyOptions o;
    o.label_smoothing = recipe_["data"]["label_smoothing"];
    return {cross_entropy(logits(b[0].to(device_)), b[1].to(device_), o), b[0].size(0)};
  }

  Json evaluate(int64_t max_batches) override {
    Json out = classification_eval(*model_, test_, 250, max_batches, tm::kNumClasses, device_,
                                   [&](const Tensor& images) { return logits(images); });
    out["n"]["train_labels"] = train_->size();
    return out;
  }

 private:
  Json recipe_;
  Device device_;
  Generator gen_{recipe_["train"]["seed"].get<uint64_t>() + 0x636c6173ull};
  std::shared_ptr<RenderedFashion> train_, test_;
  std::unique_ptr<Vocabulary> vocab_;
  std::shared_ptr<omni::OmniModel> model_;
  std::unique_ptr<data::DataLoader> loader_;
};

}  // namespace

Json omni_classify_schema() {
  Json model = omni_model_schema();
  model["kind"] = "omni_classify";
  return Json{{"model", model},
              {"data",
               {{"dataset", "fashion-mnist-scenes"},
                {"root", "data/trimodal"},
                {"fashion_dir", data::kFashionMnistDir},
                {"label_fraction", 0.01},
                {"train_layout", "center"},
                {"test_limit", 0},
                {"label_smoothing", 0.0}}}};
}

std::unique_ptr<Task> make_omni_classify(const Json& resolved, const TaskContext& context) {
  return std::make_unique<OmniClassify>(resolved, context);
}

}  // namespace loom::train::omni_task
