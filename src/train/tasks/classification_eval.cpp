#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/ops.hpp"
#include "train/tasks/tasks.hpp"

namespace loom::train {

Json classification_eval(nn::Module& model, std::shared_ptr<data::Dataset> test, int64_t batch_size,
                         int64_t max_batches, int64_t classes, Device device,
                         const std::function<Tensor(const Tensor&)>& logits) {
  NoGradGuard guard;
  model.eval();
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.drop_last = false;
  lo.num_workers = 1;
  data::DataLoader loader(std::move(test), lo);
  int64_t correct = 0, n = 0, batches = 0;
  double loss_sum = 0;
  while (auto b = loader.next()) {
    const Tensor labels = (*b)[1].to(device);
    const Tensor l = logits((*b)[0].to(device));
    correct += sum(eq(argmax(l, 1), labels)).item<int64_t>();
    loss_sum += cross_entropy(l, labels).item<double>() * static_cast<double>((*b)[0].size(0));
    n += (*b)[0].size(0);
    if (max_batches > 0 && ++batches >= max_batches) break;
  }
  model.train();
  LOOM_CHECK(n > 0, "evaluation: the test set is empty");
  return Json{{"metrics", {{"accuracy", static_cast<double>(correct) / static_cast<double>(n)},
                           {"val_loss", loss_sum / static_cast<double>(n)}}},
              {"chance", {{"accuracy", 1.0 / static_cast<double>(classes)}}},
              {"n", {{"accuracy", n}, {"val_loss", n}}}};
}

}  // namespace loom::train
