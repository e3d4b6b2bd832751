// Task "gpt": a causal language model over UTF-8 text corpora (by default the
// poetry corpus: Tang poems, Song ci and English fortunes) with a byte-level
// BPE tokenizer trained on the training split. Evaluation reports held-out
// bits per byte next to a smoothed byte-bigram baseline fitted on the same
// training split and scored on the same bytes.
#include <cmath>
#include <filesystem>

#include "loom/autograd/grad_mode.hpp"
#include "loom/data/bpe.hpp"
#include "loom/data/text.hpp"
#include "loom/dist/process_group.hpp"
#include "loom/models/gpt.hpp"
#include "loom/models/gpt_parallel.hpp"
#include "loom/ops/ops.hpp"
#include "train/tasks/tasks.hpp"

namespace fs = std::filesystem;

namespace loom::train {

namespace {

constexpr const char* kEndOfText = "<|endoftext|>";
constexpr char kEndOfTextByte = '\0';  // how the baseline sees the record separator

// Windows of seq_len + 1 tokens at stride seq_len: {input [T], target [T]}.
class TokenWindows : public data::Dataset {
 public:
  TokenWindows(std::shared_ptr<const std::vector<int32_t>> tokens, int64_t seq_len)
      : tokens_(std::move(tokens)), seq_len_(seq_len) {}
  int64_t size() const override {
    return tokens_->size() > 1 ? (static_cast<int64_t>(tokens_->size()) - 1) / seq_len_ : 0;
  }
  data::Example get(int64_t i) const override {
    std::vector<int64_t> in(seq_len_), out(seq_len_);
    for (int64_t t = 0; t < seq_len_; ++t) {
      in[t] = (*tokens_)[i * seq_len_ + t];
      out[t] = (*tokens_)[i * seq_len_ + t + 1];
    }
    return {from_vector(in, {seq_len_}), from_vector(out, {seq_len_})};
  }

 private:
  std::shared_ptr<const std::vector<int32_t>> tokens_;
  int64_t seq_len_;
};

// Witten-Bell smoothed byte bigram: P(b|a) = (c(a,b) + T(a) P1(b)) / (c(a) + T(a)),
// T(a) the number of distinct bytes seen after a, P1 an add-one unigram.
class ByteBigram {
 public:
  explicit ByteBigram(const std::string& text) : pair_(256 * 256, 0), first_(256, 0), uni_(256, 0) {
    for (size_t i = 0; i < text.size(); ++i) {
      const auto b = static_cast<unsigned char>(text[i]);
      ++uni_[b];
      if (i > 0) {
        const auto a = static_cast<unsigned char>(text[i - 1]);
        if (pair_[a * 256 + b]++ == 0) ++types_[a];
        ++first_[a];
      }
    }
    total_ = static_cast<double>(text.size());
  }
  // Bits to code text[start..] given the byte before each.
  double bits(const std::string& text, size_t start) const {
    double total = 0;
    for (size_t i = std::max<size_t>(start, 1); i < text.size(); ++i) {
      const auto a = static_cast<unsigned char>(text[i - 1]), b = static_cast<unsigned char>(text[i]);
      const double p1 = (uni_[b] + 1.0) / (total_ + 256.0);
      const double t = types_[a];
      const double p = first_[a] + t > 0 ? (pair_[a * 256 + b] + t * p1) / (first_[a] + t) : p1;
      total -= std::log2(p);
    }
    return total;
  }

 private:
  std::vector<double> pair_, first_, uni_;
  double types_[256] = {};
  double total_ = 0;
};

class CausalLM : public Task {
 public:
  CausalLM(const Json& r, const TaskContext& context)
      : recipe_(r), device_(context.device), gen_(r["train"]["seed"].get<uint64_t>()) {
    const std::string& run_dir = context.run_dir;
    const Json& m = r["model"];
    const Json& d = r["data"];
    LOOM_CHECK(d["corpus"] == "poetry", "recipe: data.corpus '", d["corpus"].get<std::string>(),
               "' is not supported (poetry)");
    std::vector<std::string> files = data::default_poetry_corpus_files(d["root"]);
    const auto corpus = data::load_corpus(files);
    const auto split = data::split_records(corpus.records, d["val_fraction"], d["split_seed"]);
    std::vector<std::string> train_texts;
    for (const auto& rec : split.train) train_texts.push_back(rec.text);

    const fs::path saved = fs::path(run_dir) / "tokenizer.json";
    if (!run_dir.empty() && fs::exists(saved)) {
      tokenizer_ = data::BpeTokenizer::load(saved.string());
    } else {
      data::BpeTrainOptions to;
      to.special_tokens = {kEndOfText};
      try {
        to.pretokenizer = data::pretokenizer_from_name(d["pretokenizer"].get<std::string>());
      } catch (const Error& e) {
        LOOM_FAIL("recipe: data.pretokenizer: ", e.what());
      }
      tokenizer_ = data::BpeTokenizer::train(train_texts, m["vocab_size"], to);
    }
    LOOM_CHECK(tokenizer_.vocab_size() <= m["vocab_size"].get<int64_t>(), "tokenizer has ", tokenizer_.vocab_size(),
               " tokens but model.vocab_size is ", m["vocab_size"].get<int64_t>());
    eot_ = tokenizer_.special_token_id(kEndOfText);
    train_tokens_ = encode(weighted(split.train, d["chinese_weight"]));
    val_tokens_ = encode(split.val);

    const models::GPTConfig c = models::GPTConfig::from_json(m);
    seq_len_ = c.seq_len;
    // dist.tp_size > 1: the model is split over the tensor-parallel group.
    if (context.tp && context.tp->size() > 1) tp_model_ = std::make_shared<models::ParallelGPT>(c, context.tp, &gen_);
    else model_ = std::make_shared<models::GPT>(c, &gen_);

    auto windows = std::make_shared<TokenWindows>(train_tokens_, c.seq_len);
    LOOM_CHECK(windows->size() > 0, "poetry corpus: too few training tokens (", train_tokens_->size(),
               ") for seq_len ", c.seq_len);
    loader_ = std::make_unique<data::DataLoader>(windows, training_loader_options(r, context));
    bigram_ = std::make_unique<ByteBigram>(bytes_of(*train_tokens_, 0, train_tokens_->size()));
  }

  nn::Module& model() override { return tp_model_ ? static_cast<nn::Module&>(*tp_model_) : *model_; }
  data::DataLoader& loader() override { return *loader_; }
  std::string unit() const override { return "tokens"; }
  std::vector<Generator*> generators() override { return {&gen_}; }
  void save_artifacts(const std::string& run_dir) override {
    tokenizer_.save((fs::path(run_dir) / "tokenizer.json").string());
  }

  LossResult loss(const data::Batch& b) override {
    if (tp_model_) return {tp_model_->loss(b[0], b[1]), b[1].numel()};
    Tensor logits = model_->forward(b[0].to(device_));
    return {cross_entropy(logits.reshape({-1, logits.size(-1)}), b[1].to(device_).reshape({-1})), b[1].numel()};
  }

  Json evaluate(int64_t max_batches) override {
    NoGradGuard guard;
    model().eval();
    const int64_t t = seq_len_;
    TokenWindows windows(val_tokens_, t);
    const int64_t batch = 16;
    int64_t n_windows = windows.size();
    if (max_batches > 0) n_windows = std::min(n_windows, max_batches * batch);
    LOOM_CHECK(n_windows > 0, "poetry corpus: the validation split has too few tokens for seq_len ", t);
    double nll = 0;
    for (int64_t start = 0; start < n_windows; start += batch) {
      std::vector<data::Example> ex;
      for (int64_t i = start; i < std::min(n_windows, start + batch); ++i) ex.push_back(windows.get(i));
      nll += summed_nll(data::collate(ex));
    }
    model().train();
    // The bytes the model predicted: those of tokens 1 .. n_windows * t.
    const size_t end = static_cast<size_t>(n_windows * t) + 1;
    const std::string context = bytes_of(*val_tokens_, 0, 1);
    const std::string covered = bytes_of(*val_tokens_, 0, end);
    const double bytes = static_cast<double>(covered.size() - context.size());
    const double tokens = static_cast<double>(n_windows * t);
    const double bpb = nll / std::log(2.0) / bytes;
    const double bigram_bpb = bigram_->bits(covered, context.size()) / bytes;
    return Json{{"metrics", {{"val_loss", nll / tokens}, {"bits_per_byte", bpb}, {"bigram_bits_per_byte", bigram_bpb}}},
                {"chance", {{"bits_per_byte", 8.0}, {"val_loss", std::log(static_cast<double>(tokenizer_.vocab_size()))}}},
                {"n", {{"val_loss", static_cast<int64_t>(tokens)}, {"bits_per_byte", static_cast<int64_t>(bytes)}}}};
  }

 private:
  // The summed negative log-likelihood of a batch's targets.
  double summed_nll(const data::Batch& b) {
    if (tp_model_) return tp_model_->loss(b[0], b[1]).item<double>() * static_cast<double>(b[1].numel());
    Tensor logits = model_->forward(b[0].to(device_));
    CrossEntropyOptions o;
    o.reduction = CrossEntropyOptions::Reduction::sum;
    return cross_entropy(logits.reshape({-1, logits.size(-1)}), b[1].to(device_).reshape({-1}), o).item<double>();
  }

  std::shared_ptr<const std::vector<int32_t>> encode(const std::vector<data::TextRecord>& records) const {
    auto out = std::make_shared<std::vector<int32_t>>();
    for (const auto& rec : records) {
      const auto ids = tokenizer_.encode(rec.text);
      out->insert(out->end(), ids.begin(), ids.end());
      out->push_back(eot_);
    }
    return out;
  }

  // The training records with every mostly-Chinese record repeated `weight`
  // times (the verse is a small part of the corpus); validation is untouched.
  static std::vector<data::TextRecord> weighted(const std::vector<data::TextRecord>& records, int64_t weight) {
    LOOM_CHECK(weight >= 1, "recipe: data.chinese_weight must be at least 1, got ", weight);
    std::vector<data::TextRecord> out;
    for (const auto& rec : records) {
      size_t high = 0;
      for (unsigned char c : rec.text) high += c >= 0x80;
      const int64_t copies = 2 * high > rec.text.size() ? weight : 1;
      for (int64_t i = 0; i < copies; ++i) out.push_back(rec);
    }
    return out;
  }

  std::string bytes_of(const std::vector<int32_t>& ids, size_t begin, size_t end) const {
    std::string s;
    for (size_t i = begin; i < std::min(end, ids.size()); ++i)
      s += ids[i] == eot_ ? std::string(1, kEndOfTextByte) : tokenizer_.token_bytes(ids[i]);
    return s;
  }

  Json recipe_;
  Device device_;
  Generator gen_;
  data::BpeTokenizer tokenizer_;
  int32_t eot_ = 0;
  std::shared_ptr<const std::vector<int32_t>> train_tokens_, val_tokens_;
  int64_t seq_len_ = 0;
  std::shared_ptr<models::GPT> model_;              // tensor parallel off
  std::shared_ptr<models::ParallelGPT> tp_model_;  // dist.tp_size > 1
  std::unique_ptr<data::DataLoader> loader_;
  std::unique_ptr<ByteBigram> bigram_;
};

}  // namespace

Json causal_lm_schema() {
  return Json{{"model",
               {{"kind", "gpt"},
                {"vocab_size", 4096},
                {"d_model", 128},
                {"n_layers", 4},
                {"n_heads", 4},
                {"seq_len", 128},
                {"mlp_ratio", 4},
                {"dropout", 0.0}}},
              {"data",
               {{"corpus", "poetry"},
                {"root", data::kFortuneDir},
                {"val_fraction", 0.05},
                {"split_seed", 0},
                {"chinese_weight", 1},
                {"pretokenizer", data::pretokenizer_name(data::Pretokenizer::byte_classes)}}}};
}

std::unique_ptr<Task> make_causal_lm(const Json& resolved, const TaskContext& context) {
  return std::make_unique<CausalLM>(resolved, context);
}

}  // namespace loom::train
