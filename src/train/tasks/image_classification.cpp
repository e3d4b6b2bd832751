// Task "image_classifier": Fashion-MNIST classification with a ViT or a CNN.
#include "train/tasks/tasks.hpp"

#include "loom/models/image_classifier.hpp"
#include "loom/ops/ops.hpp"

namespace loom::train {

namespace {

// The first `n` examples of another dataset (for test-sized runs).
class Prefix : public data::Dataset {
 public:
  Prefix(std::shared_ptr<data::Dataset> base, int64_t n) : base_(std::move(base)), n_(std::min(n, base_->size())) {}
  int64_t size() const override { return n_; }
  data::Example get(int64_t i) const override { return base_->get(i); }

 private:
  std::shared_ptr<data::Dataset> base_;
  int64_t n_;
};

std::shared_ptr<data::Dataset> limited(std::shared_ptr<data::Dataset> d, int64_t limit) {
  return limit > 0 ? std::make_shared<Prefix>(std::move(d), limit) : d;
}

class ImageClassification : public Task {
 public:
  ImageClassification(const Json& r, const TaskContext& context) : recipe_(r), device_(context.device) {
    const Json& m = r["model"];
    const Json& d = r["data"];
    LOOM_CHECK(d["dataset"] == "fashion-mnist", "recipe: data.dataset '", d["dataset"].get<std::string>(),
               "' is not supported (fashion-mnist)");
    models::ImageClassifierConfig c;
    c.arch = m["arch"];
    c.patch = m["patch"];
    c.d_model = m["d_model"];
    c.n_layers = m["n_layers"];
    c.n_heads = m["n_heads"];
    c.mlp_ratio = m["mlp_ratio"];
    c.width = m["width"];
    c.hidden = m["hidden"];
    c.dropout = m["dropout"];
    // The model draws its initial weights, then its dropout masks, from gen_.
    model_ = std::make_shared<models::ImageClassifier>(c, &gen_);
    const std::string root = d["root"];
    train_ = limited(data::fashion_mnist(root, true, true), d["train_limit"]);
    test_ = limited(data::fashion_mnist(root, false, true), d["test_limit"]);
    loader_ = std::make_unique<data::DataLoader>(train_, training_loader_options(r, context));
  }

  nn::Module& model() override { return *model_; }
  data::DataLoader& loader() override { return *loader_; }
  std::string unit() const override { return "samples"; }
  std::vector<Generator*> generators() override { return {&gen_}; }

  LossResult loss(const data::Batch& b) override {
    CrossEntropyOptions o;
    o.label_smoothing = recipe_["data"]["label_smoothing"];
    return {cross_entropy(model_->forward(b[0].to(device_)), b[1].to(device_), o), b[0].size(0)};
  }

  Json evaluate(int64_t max_batches) override {
    return classification_eval(*model_, test_, 500, max_batches, 10, device_,
                               [&](const Tensor& images) { return model_->forward(images); });
  }

 private:
  Json recipe_;
  Device device_;
  Generator gen_{recipe_["train"]["seed"].get<uint64_t>()};
  std::shared_ptr<models::ImageClassifier> model_;
  std::shared_ptr<data::Dataset> train_, test_;
  std::unique_ptr<data::DataLoader> loader_;
};

}  // namespace

Json image_classifier_schema() {
  return Json{{"model",
               {{"kind", "image_classifier"},
                {"arch", "vit"},
                {"patch", 4},
                {"d_model", 64},
                {"n_layers", 4},
                {"n_heads", 4},
                {"mlp_ratio", 2},
                {"width", 32},
                {"hidden", 128},
                {"dropout", 0.0}}},
              {"data",
               {{"dataset", "fashion-mnist"},
                {"root", data::kFashionMnistDir},
                {"train_limit", 0},
                {"test_limit", 0},
                {"label_smoothing", 0.0}}}};
}

std::unique_ptr<Task> make_image_classification(const Json& resolved, const TaskContext& context) {
  return std::make_unique<ImageClassification>(resolved, context);
}

}  // namespace loom::train
