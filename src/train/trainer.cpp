#include "loom/train/trainer.hpp"

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "loom/autograd/grad_mode.hpp"
#include "loom/core/cuda.hpp"
#include "loom/core/deterministic.hpp"
#include "loom/dist/dist.hpp"
#include "loom/train/adapt.hpp"
#include "loom/io/atomic_file.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/ops/autocast.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/optim/optimizer.hpp"
#include "loom/optim/schedule.hpp"
#include "loom/train/progress.hpp"
#include "loom/train/task.hpp"
#include "train/parallel.hpp"

namespace fs = std::filesystem;

namespace loom::train {

Json load_resolved_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  Json recipe = read_recipe(path);
  for (const auto& o : overrides) apply_override(recipe, o);
  return resolve(recipe, task_schema(recipe), path);
}

namespace {

// With dist.zero, AdamW is sharded over the data-parallel group (dist::ZeroAdamW).
std::unique_ptr<optim::Optimizer> make_optimizer(const Json& op, nn::Module& model, const Parallelism& parallel) {
  const std::string name = op["name"];
  auto groups = optim::decay_groups(model, op["weight_decay"].get<double>());
  const optim::AdamWOptions adamw{op["beta1"].get<double>(), op["beta2"].get<double>(), op["eps"].get<double>()};
  if (name == "adamw" && parallel.zero_group())
    return std::make_unique<dist::ZeroAdamW>(groups, parallel.zero_group(), adamw, true,
                                             parallel.zero_tensor_parallel(model));
  if (name == "adamw") return std::make_unique<optim::AdamW>(groups, adamw);
  if (name == "sgd")
    return std::make_unique<optim::SGD>(groups, optim::SGDOptions{op["momentum"].get<double>(), 0.0, op["nesterov"].get<bool>()});
  LOOM_FAIL("recipe: unknown optim.name '", name, "' (expected adamw or sgd)");
}

optim::Schedule make_schedule(const Json& op, int64_t steps) {
  optim::Schedule s;
  s.kind = optim::Schedule::kind_from_name(op["schedule"]);
  s.base_lr = op["lr"];
  s.warmup_steps = op["warmup_steps"];
  s.total_steps = steps;
  s.min_lr_ratio = op["min_lr_ratio"];
  return s;
}

// Evaluation runs in the precision the model trains in.
Json evaluate_in(Task& task, int64_t max_batches, bool bf16) {
  AutocastGuard precision(DType::bf16, bf16);
  return task.evaluate(max_batches);
}

struct Metrics {
  explicit Metrics(const std::string& path, int64_t keep_until_step) : path_(path) {
    // On resume, drop lines a killed run wrote after the checkpoint.
    std::vector<std::string> kept;
    if (keep_until_step > 0) {
      std::ifstream in(path);
      std::string line;
      while (std::getline(in, line)) {
        try {
          if (Json::parse(line).value("step", int64_t{0}) <= keep_until_step) kept.push_back(line);
        } catch (const Json::parse_error&) {
        }
      }
    }
    out_.open(path, std::ios::trunc);
    LOOM_CHECK(out_.good(), "cannot write '", path, "'");
    for (const auto& l : kept) out_ << l << '\n';
    out_.flush();
  }
  void write(const Json& j) {
    out_ << j.dump() << '\n';
    out_.flush();
  }
  std::string path_;
  std::ofstream out_;
};

// train.device for this rank. "cuda" on several ranks means one device per
// rank: the rank's index on its host (OMPI_COMM_WORLD_LOCAL_RANK) modulo the
// host's devices. "cuda:N" is taken as written.
Device rank_device(const Json& recipe, const dist::ProcessGroup& world) {
  const Device device = training_device(recipe);
  if (!device.is_cuda() || world.size() == 1 || recipe["train"]["device"] != "cuda") return device;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  const int local_rank = local != nullptr ? std::atoi(local) : world.rank();
  return cuda_device(local_rank % cuda_device_count());
}

Json generator_states(const std::vector<Generator*>& gens) {
  Json out = Json::array();
  for (auto* g : gens) out.push_back({g->seed(), g->offset()});
  out.push_back({default_generator().seed(), default_generator().offset()});
  return out;
}

void restore_generators(const std::vector<Generator*>& gens, const Json& states, const std::string& where) {
  LOOM_CHECK(states.is_array() && states.size() == gens.size() + 1, where, ": 'generators' holds ", states.size(),
             " states, the task has ", gens.size() + 1);
  for (const Json& st : states)
    LOOM_CHECK(st.is_array() && st.size() == 2 && st[0].is_number_unsigned() && st[1].is_number_unsigned(), where,
               ": a generator state must be [seed, offset], got ", st.dump());
  for (size_t i = 0; i < gens.size(); ++i) gens[i]->set_state(states[i][0], states[i][1]);
  default_generator().set_state(states.back()[0], states.back()[1]);
}

RunSummary run_training_on(const Json& recipe, const RunOptions& o, const dist::ProcessGroupPtr& group) {
  LOOM_CHECK(!o.out_dir.empty(), "loom-train: an output directory is required (--out DIR)");
  // Data parallel (and tensor parallel with dist.tp_size > 1) when launched on
  // several ranks: only rank 0 writes the run directory (config, artifacts,
  // metrics, checkpoints, eval).
  const int world_size = group->size();
  const bool lead = group->rank() == 0;
  if (lead) fs::create_directories(o.out_dir);
  const Json& tr = recipe["train"];
  const int64_t steps = tr["steps"], accum = tr["grad_accum"];
  LOOM_CHECK(steps > 0 && accum > 0, "recipe: train.steps and train.grad_accum must be positive");

  const std::string checkpoint = o.resume_dir.empty() ? std::string() : io::find_checkpoint(o.resume_dir, "--resume");
  manual_seed(tr["seed"].get<uint64_t>());
  const Device device = rank_device(recipe, *group);
  Parallelism parallel(recipe, group, device);
  const bool bf16 = bf16_precision(recipe);
  set_deterministic_algorithms(tr["deterministic"].get<bool>());
  // train.batch_size is per data-parallel rank: each one's loader takes its
  // shard of the global batch of batch_size * (ranks / tp_size).
  auto task = make_task(recipe, parallel.task_context(checkpoint.empty() ? o.out_dir : io::run_of_checkpoint(checkpoint),
                                                      device));
  nn::Module& model = task->model();
  parallel.check_model(model, recipe["model"]["kind"]);
  Generator adapt_gen(tr["seed"].get<uint64_t>() + 0x4c6f5241ull);  // LoRA initialisation
  const std::string adapted = adapt_model(model, tr, !checkpoint.empty(), &adapt_gen);
  model.to(device);  // before the optimizer makes its state alongside the parameters
  if (world_size > 1)
    dist::check_consistency(*group, {{"recipe", recipe.dump()},
                                     {"model parameters", dist::model_signature(model)},
                                     {"resume checkpoint", checkpoint}});
  auto optimizer = make_optimizer(recipe["optim"], model, parallel);
  const optim::Schedule schedule = make_schedule(recipe["optim"], steps);

  int64_t step = 0, skipped = 0;
  double elapsed_before = 0;
  if (!checkpoint.empty()) {
    io::CheckpointContent c = io::load_checkpoint(checkpoint);
    const Json& st = c.state;
    // The state is checksummed, but may come from another loom version: name what is missing.
    auto field = [&](const char* key) -> const Json& {
      LOOM_CHECK(st.is_object() && st.contains(key), "--resume: checkpoint '", checkpoint, "' has no '", key,
                 "' in ", io::kCheckpointState);
      return st[key];
    };
    const Json& saved_recipe = field("recipe");
    const Json saved_model = saved_recipe.is_object() ? saved_recipe.value("model", Json()) : Json();
    LOOM_CHECK(saved_model == recipe["model"], "--resume: checkpoint '", checkpoint,
               "' was trained with a different model section: ", saved_model.dump(), " vs ", recipe["model"].dump());
    parallel.load_checkpoint(model, *optimizer, c, field("optimizer"));
    task->loader().load_state(field("loader"));
    restore_generators(task->generators(), field("generators"), checkpoint);
    LOOM_CHECK(field("step").is_number_integer(), "--resume: checkpoint '", checkpoint, "': 'step' is not an integer");
    step = st["step"].get<int64_t>();
    skipped = st.value("skipped_steps", int64_t{0});
    elapsed_before = st.value("elapsed_s", 0.0);
    if (lead) std::fprintf(stderr, "resumed from %s at step %lld\n", checkpoint.c_str(), static_cast<long long>(step));
  }
  // After loading: DataParallel broadcasts rank 0's weights to the others.
  parallel.start(model);
  if (lead) {
    io::atomic_write_file((fs::path(o.out_dir) / "config.json").string(), recipe.dump(2) + "\n");
    task->save_artifacts(o.out_dir);
  }

  if (lead) std::fprintf(stderr, "%s: %s; %lld steps x %lld micro-batches of %lld%s%s\n",
               recipe["model"]["kind"].get<std::string>().c_str(), adapted.c_str(), static_cast<long long>(steps),
               static_cast<long long>(accum), static_cast<long long>(tr["batch_size"].get<int64_t>()),
               device.is_cpu() ? "" : (" on " + device.str() + " (" + cuda::device_name(device.index) + ")").c_str(),
               world_size > 1 ? ("; " + parallel.describe()).c_str() : "");

  std::optional<Metrics> metrics;
  if (lead) metrics.emplace((fs::path(o.out_dir) / "metrics.jsonl").string(), checkpoint.empty() ? 0 : step);
  Progress progress(steps, step, !o.quiet && lead);
  const int64_t log_every = std::max<int64_t>(1, tr["log_every"]), eval_every = tr["eval_every"];
  const int64_t ckpt_every = tr["checkpoint_every"], keep = tr["keep_checkpoints"], max_bad = tr["max_bad_steps"];
  const double clip = tr["clip_grad_norm"];
  const int64_t eval_batches = recipe["eval"]["max_batches"];

  // Every rank calls save at the same steps: gathering sharded state (ZeRO,
  // tensor parallel) is collective. Then rank 0 writes alone.
  auto save = [&](int64_t at_step) {
    io::CheckpointContent c;
    parallel.collect_checkpoint(model, *optimizer, c);
    if (!lead) return;
    for (auto* tensors : {&c.weights, &c.optimizer})
      for (auto& [name, t] : *tensors) t = t.to(kCPU);  // files are written from host memory
    c.state = Json{{"step", at_step},
                   {"recipe", recipe},
                   {"optimizer", optimizer->state_scalars()},
                   {"loader", task->loader().state()},
                   {"generators", generator_states(task->generators())},
                   {"skipped_steps", skipped},
                   {"elapsed_s", elapsed_before + progress.elapsed()}};
    io::save_checkpoint(io::checkpoint_dir(o.out_dir, at_step), c);
    io::prune_checkpoints(o.out_dir, static_cast<size_t>(std::max<int64_t>(1, keep)));
  };

  double last_loss = NAN, window_units = 0, window_start = progress.elapsed();
  int64_t bad_in_row = 0;
  model.train();
  while (step < steps) {
    const double lr = schedule.lr_at(step);
    double loss_sum = 0;
    int64_t units = 0;
    for (int64_t micro = 0; micro < accum; ++micro) {
      auto batch = task->loader().next();
      if (!batch) batch = task->loader().next();  // a new epoch begins
      LOOM_CHECK(batch.has_value(), "training data is empty: the loader gave no batch");
      const LossResult r = [&] {
        AutocastGuard precision(DType::bf16, bf16);  // the forward pass only; backward never autocasts
        return task->loss(*batch);
      }();
      loss_sum += r.loss.item<double>();
      units += r.units;
      Tensor scaled = accum == 1 ? r.loss : div(r.loss, static_cast<double>(accum));
      parallel.backward(scaled, micro + 1 == accum);
    }
    parallel.finish_step(loss_sum, units);  // gradients and the loss averaged over ranks
    const double loss = loss_sum / static_cast<double>(accum);
    const double norm = parallel.clip_grad_norm(*optimizer, model, clip);  // of the averaged gradient
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      optimizer->zero_grad();
      ++skipped;
      ++bad_in_row;
      if (lead) std::fprintf(stderr, "\nstep %lld: non-finite %s (loss %g, grad norm %g); update skipped (%lld in a row)\n",
                   static_cast<long long>(step + 1), std::isfinite(loss) ? "gradient" : "loss", loss, norm,
                   static_cast<long long>(bad_in_row));
      LOOM_CHECK(bad_in_row < max_bad, "stopping: ", bad_in_row, " non-finite steps in a row at step ", step + 1,
                 " (train.max_bad_steps = ", max_bad, "); lower optim.lr or check the data");
    } else {
      bad_in_row = 0;
      optimizer->step(lr);
      optimizer->zero_grad();
      last_loss = loss;
    }
    ++step;
    window_units += static_cast<double>(units);

    if (lead && (step % log_every == 0 || step == steps)) {
      const double now = progress.elapsed();
      const double rate = window_units / std::max(1e-9, now - window_start);
      metrics->write(Json{{"step", step},
                         {"loss", loss},
                         {"lr", lr},
                         {"grad_norm", norm},
                         {"elapsed_s", elapsed_before + now},
                         {task->unit() + "_per_s", rate},
                         {"skipped_steps", skipped}});
      char status[160];
      std::snprintf(status, sizeof status, "loss %.4f  lr %.2e  %.0f %s/s", loss, lr, rate, task->unit().c_str());
      progress.update(step, status);
      window_units = 0;
      window_start = now;
    }
    if (parallel.evaluates() && eval_every > 0 && step % eval_every == 0 && step < steps) {
      Json ev = evaluate_in(*task, eval_batches, bf16);  // with its tensor-parallel peers
      model.train();
      if (lead) {
        Json line{{"step", step}, {"elapsed_s", elapsed_before + progress.elapsed()}};
        for (auto& [k, v] : ev["metrics"].items()) line["eval_" + k] = v;
        metrics->write(line);
        progress.update(step, "eval " + ev["metrics"].dump(), true);
      }
    }
    if (ckpt_every > 0 && step % ckpt_every == 0 && step < steps) save(step);
    if (o.stop_at_step > 0 && step == o.stop_at_step && step < steps) {
      progress.finish();
      if (ckpt_every <= 0 || step % ckpt_every != 0) save(step);
      RunSummary stopped;
      stopped.steps = step;
      stopped.final_loss = last_loss;
      stopped.skipped_steps = skipped;
      return stopped;
    }
  }
  progress.finish();
  save(step);

  RunSummary summary;
  summary.steps = step;
  summary.final_loss = last_loss;
  summary.skipped_steps = skipped;
  if (!parallel.evaluates()) {  // evaluation: rank 0 and its tensor-parallel peers; eval.json: rank 0
    summary.eval = Json{{"metrics", Json::object()}};
    return summary;
  }
  summary.eval = evaluate_in(*task, eval_batches, bf16);
  if (!lead) return summary;
  summary.eval["step"] = step;
  io::atomic_write_file((fs::path(o.out_dir) / "eval.json").string(), summary.eval.dump(2) + "\n");
  return summary;
}

}  // namespace

Json evaluate_run(const std::string& run_or_checkpoint, const std::vector<std::string>& overrides,
                  const std::string& out_path) {
  const std::string checkpoint = io::find_checkpoint(run_or_checkpoint, "evaluate");
  const std::string run = io::run_of_checkpoint(checkpoint);
  const std::string config = (fs::path(run) / "config.json").string();
  LOOM_CHECK(fs::exists(config), "evaluate: '", run, "' has no config.json (is it a loom-train run directory?)");
  Json recipe = read_recipe(config);
  for (const auto& o : overrides) {
    LOOM_CHECK(o.rfind("model.", 0) != 0, "evaluate: --set ", o, ": the model section of '", config,
               "' is fixed by the training run");
    apply_override(recipe, o);
  }
  recipe = resolve(recipe, task_schema(recipe), config);
  const Device device = training_device(recipe);
  auto task = make_task(recipe, TaskContext{run, 0, 1, nullptr, device});
  Generator adapt_gen(0);  // LoRA A is overwritten by the checkpoint
  adapt_model(task->model(), recipe["train"], /*resuming=*/true, &adapt_gen);
  io::CheckpointContent c = io::load_checkpoint(checkpoint);
  task->model().load_state_dict(c.weights);
  task->model().to(device);
  Json eval = evaluate_in(*task, recipe["eval"]["max_batches"].get<int64_t>(), bf16_precision(recipe));
  eval["step"] = c.state.value("step", int64_t{0});
  eval["checkpoint"] = checkpoint;
  const std::string out = out_path.empty() ? (fs::path(run) / "eval.json").string() : out_path;
  io::atomic_write_file(out, eval.dump(2) + "\n");
  return eval;
}

RunSummary run_training(const Json& recipe, const RunOptions& o) {
  auto world = dist::init_distributed();
  if (world->size() == 1) return run_training_on(recipe, o, world);
  // Several ranks: an error on one rank stops the job at once, rather than
  // leaving the others to wait for their collectives' deadline.
  try {
    return run_training_on(recipe, o, world);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nrank %d: error: %s\n", world->rank(), e.what());
    world->abort(1);
    throw;  // not reached: abort ends the process
  }
}

}  // namespace loom::train
