// `loom-bench train-step --recipe R [--set k=v]...`: whole training steps of a
// recipe, built from the trainer's own pieces (make_task, the recipe's
// optimizer with decay groups, clipping): next batch from the task's loader,
// loss, backward, clip, AdamW/SGD step, zero_grad. Warm-up steps (--warmup,
// default 3) then --steps (default 10) timed steps; the median step time
// gives tokens_per_s / samples_per_s. peak_rss_mb is the process peak.
// fraction_of_peak: model FLOPs per step (3 x forward, dense products only,
// causal attention counted dense) / the FMA peak; only for gpt and vit.
//
// The recipe's train.device and train.precision apply (`--set
// train.device=cuda --set train.precision=bf16`): the model moves there, each
// forward pass runs under autocast, and each timed step ends with a device
// synchronisation. On a device, fraction_of_peak is against --peak-tflops
// (the measured bf16 GEMM rate, from scripts/gpu-check.sh), and is left out
// without it. --synthetic (gpt only) feeds uniform random tokens instead of
// the task's data, so that any shape (GPT-2 124M: vocab 50257 padded to
// 50304, width 768, 12 layers, sequence 1024) can be timed without a
// tokenizer of that size.
// --attention automatic|fused|vendor|composed picks the attention kernel the steps
// run (AttentionKernelGuard), to time a fused kernel against the composition
// inside whole steps. --profile N runs N more steps after the timed ones
// under the kernel profile (loom/core/kernel_profile.hpp) and prints its
// table on stderr: where the step's time goes, kernel by kernel.
// On a device, host_issue_ms is the median host time to issue a step's
// forward and backward launches (up to clipping, which reads the norm back):
// close to the step time, the step is bound by the host's dispatch, not by
// the device.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "bench.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/core/cuda.hpp"
#include "loom/core/kernel_profile.hpp"
#include "loom/models/gpt.hpp"
#include "loom/ops/ops.hpp"
#include "loom/optim/optimizer.hpp"
#include "loom/train/task.hpp"
#include "loom/train/trainer.hpp"

namespace loom::bench {

namespace {

// Training FLOPs of one step (0 when the model kind is not known here).
double train_flops(const train::Json& r) {
  const auto& m = r["model"];
  const std::string kind = m["kind"];
  const double batch = r["train"]["batch_size"].get<double>() * r["train"]["grad_accum"].get<double>();
  if (kind == "gpt") {
    const double d = m["d_model"], l = m["n_layers"], t = m["seq_len"], v = m["vocab_size"], mr = m["mlp_ratio"];
    const double per_token = 2 * (l * (4 * d * d + 2 * mr * d * d) + v * d) + l * 4 * t * d;
    return 3 * per_token * t * batch;
  }
  if (kind == "image_classifier" && m["arch"] == "vit") {
    const double d = m["d_model"], l = m["n_layers"], p = m["patch"], mr = m["mlp_ratio"];
    const double side = 28 / p, t = side * side;
    const double per_token = 2 * (l * (4 * d * d + 2 * mr * d * d) + p * p * d) + l * 4 * t * d;
    return 3 * per_token * t * batch;
  }
  return 0;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const train::Json& op, nn::Module& model) {
  const std::string name = op["name"];
  auto groups = optim::decay_groups(model, op["weight_decay"].get<double>());
  if (name == "adamw")
    return std::make_unique<optim::AdamW>(
        groups, optim::AdamWOptions{op["beta1"].get<double>(), op["beta2"].get<double>(), op["eps"].get<double>()});
  return std::make_unique<optim::SGD>(groups, optim::SGDOptions{op["momentum"].get<double>(), 0.0,
                                                                op["nesterov"].get<bool>()});
}

}  // namespace

// Runs `steps` more of `step` under the kernel profile and prints its table.
template <class Step>
void print_kernel_profile(Step& step, int64_t steps) {
  start_kernel_profile();
  const auto start = std::chrono::steady_clock::now();
  try {
    for (int64_t i = 0; i < steps; ++i) step();
  } catch (...) {
    stop_kernel_profile();
    throw;
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::vector<KernelTime> rows = stop_kernel_profile();
  std::fprintf(stderr, "kernel profile of %lld steps (%.1f ms per step):\n%s", static_cast<long long>(steps),
               1e3 * wall / static_cast<double>(steps), format_kernel_profile(rows, wall).c_str());
}

void run_train_step(const Options& opt) {
  LOOM_CHECK(opt.has("recipe"), "train-step: --recipe R is required");
  const std::string path = opt.str("recipe");
  const train::Json recipe = train::load_resolved_recipe(path, opt.sets);
  const auto& tr = recipe["train"];
  manual_seed(tr["seed"].get<uint64_t>());
  const std::string tmp = (std::filesystem::temp_directory_path() / "loom-bench-train-step").string();
  std::filesystem::create_directories(tmp);
  const Device device = train::training_device(recipe);
  const bool bf16 = train::bf16_precision(recipe);
  const std::string kind = recipe["model"]["kind"];
  const bool synthetic = opt.has("synthetic");
  LOOM_CHECK(!synthetic || kind == "gpt", "train-step: --synthetic is for model.kind gpt, not '", kind, "'");
  std::unique_ptr<train::Task> task;
  std::unique_ptr<models::GPT> gpt;
  if (synthetic) {
    gpt = std::make_unique<models::GPT>(models::GPTConfig::from_json(recipe["model"]));
  } else {
    task = train::make_task(recipe, train::TaskContext{tmp, 0, 1, nullptr, device});
  }
  nn::Module& model = synthetic ? static_cast<nn::Module&>(*gpt) : task->model();
  model.to(device);
  auto optimizer = make_optimizer(recipe["optim"], model);
  const std::vector<Tensor> params = model.parameters();
  const double clip = tr["clip_grad_norm"];
  const int64_t accum = tr["grad_accum"];
  model.train();

  Generator tokens(tr["seed"].get<uint64_t>());
  // One micro-batch's loss: the task's, or next-token loss on random tokens.
  auto micro_batch_loss = [&]() -> train::LossResult {
    if (synthetic) {
      const auto& c = gpt->config;
      const int64_t b = tr["batch_size"];
      const Tensor ids = randint(0, c.vocab_size, {b, c.seq_len + 1}, DType::i64, &tokens).to(device);
      const Tensor logits = gpt->forward(ids.narrow(1, 0, c.seq_len));
      const Tensor next = ids.narrow(1, 1, c.seq_len).contiguous();
      return {cross_entropy(logits.reshape({-1, c.vocab_size}), next.reshape({-1})), b * c.seq_len};
    }
    auto batch = task->loader().next();
    if (!batch) batch = task->loader().next();
    LOOM_CHECK(batch.has_value(), "train-step: the loader gave no batch");
    return task->loss(*batch);
  };

  AttentionKernel attention = AttentionKernel::automatic;
  if (opt.has("attention")) {
    const std::string name = opt.str("attention");
    bool known = false;
    for (AttentionKernel k : {AttentionKernel::automatic, AttentionKernel::fused, AttentionKernel::vendor,
                              AttentionKernel::composed})
      if (name == attention_kernel_name(k)) attention = k, known = true;
    LOOM_CHECK(known, "train-step: --attention must be automatic, fused, vendor or composed, got '", name, "'");
  }

  int64_t units = 0;
  // Host time to issue each step's forward and backward passes (clipping reads
  // the norm back, a synchronisation): near the step time, the device waits
  // on the host (launch- or dispatch-bound).
  std::vector<double> issue_ms;
  auto step = [&] {
    const auto issue_start = std::chrono::steady_clock::now();
    AttentionKernelGuard kernel(attention);
    units = 0;
    for (int64_t micro = 0; micro < accum; ++micro) {
      const train::LossResult r = [&] {
        AutocastGuard precision(DType::bf16, bf16);  // the forward pass only, as in the trainer
        return micro_batch_loss();
      }();
      units += r.units;
      (accum == 1 ? r.loss : div(r.loss, static_cast<double>(accum))).backward();
    }
    issue_ms.push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - issue_start).count());
    if (clip > 0) optim::clip_grad_norm(params, clip);
    optimizer->step(1e-4);
    optimizer->zero_grad();
    if (device.is_cuda()) cuda::synchronize(device.index);
  };
  Options o = opt;
  o.values["warmup"] = std::to_string(opt.integer("warmup", 3));
  o.values["reps"] = std::to_string(std::max<int64_t>(1, opt.integer("steps", 10)));  // fixed: see issue_ms below
  const double ms = median_ms(o, step);
  // The timed steps' issue times: the last `reps` (after median_ms's warm-ups).
  const auto timed = std::min(issue_ms.size(), static_cast<size_t>(o.reps()));
  const double issue_median = median(std::vector<double>(issue_ms.end() - static_cast<ptrdiff_t>(timed),
                                                         issue_ms.end()));
  // One more step, counting the device allocations it makes: a warm caching
  // allocator serves a steady-state step without cudaMalloc.
  int64_t step_mallocs = -1;
  if (device.is_cuda()) {
    const auto before = cuda::memory_stats(device.index).device_mallocs;
    step();
    step_mallocs = static_cast<int64_t>(cuda::memory_stats(device.index).device_mallocs - before);
  }
  if (const int64_t profiled = opt.integer("profile", 0); profiled > 0) print_kernel_profile(step, profiled);

  const int64_t batch = tr["batch_size"].get<int64_t>() * accum;
  std::string shape = kind + " batch " + std::to_string(batch);
  if (kind == "gpt") shape += " seq " + std::to_string(recipe["model"]["seq_len"].get<int64_t>());
  Record r = record("train_step", shape, ms);
  r["recipe"] = std::filesystem::path(path).filename().string();
  r["device"] = device.str();
  r["precision"] = tr["precision"];
  if (synthetic) r["data"] = "synthetic";
  if (opt.has("attention")) r["attention"] = attention_kernel_name(attention);
  if (bf16) r["dtype"] = "bf16";
  r["params"] = model.num_parameters();
  const double per_s = 1e3 / ms;
  if (synthetic || task->unit() == "tokens") r["tokens_per_s"] = std::round(static_cast<double>(units) * per_s * 10) / 10;
  r["samples_per_s"] = std::round(static_cast<double>(batch) * per_s * 10) / 10;
  if (device.is_cuda()) r["host_issue_ms"] = std::round(issue_median * 1e3) / 1e3;
  r["peak_rss_mb"] = std::round(peak_rss_mb() * 10) / 10;
  if (device.is_cuda()) {
    const auto mem = cuda::memory_stats(device.index);
    r["peak_device_mb"] = std::round(static_cast<double>(mem.peak_allocated_bytes) / 1048576.0 * 10) / 10;
    r["device_mallocs"] = mem.device_mallocs;
    r["device_mallocs_last_step"] = step_mallocs;
  }
  if (const double fl = train_flops(recipe); fl > 0) {
    const double gflops = fl / (ms * 1e-3) / 1e9;
    r["model_gflops"] = std::round(gflops * 1e3) / 1e3;
    if (!device.is_cuda()) {
      r["fraction_of_peak"] = std::round(gflops / limits(opt).fma_gflops * 1e3) / 1e3;
    } else if (opt.has("peak-tflops")) {
      const double peak_gflops = std::stod(opt.str("peak-tflops")) * 1e3;
      r["fraction_of_peak"] = std::round(gflops / peak_gflops * 1e3) / 1e3;  // MFU against the measured GEMM rate
    }
  }
  emit(r);
}

}  // namespace loom::bench
