// Moving tensors and modules between devices, checked on cuda::HostEmulation
// (stand-in CUDA devices in host memory), so that it runs on every machine.
// The CUDA kernels themselves are tested under the label `cuda`.
#include <catch2/catch.hpp>

#include <cmath>

#include <loom/core/cuda.hpp>
#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

TEST_CASE("a host emulation stands in for CUDA devices while it lives", "[device]") {
  const bool real_gpu = cuda::built_with_cuda() && cuda_available();
  {
    cuda::HostEmulation emulation(2);
    CHECK(cuda_available());
    CHECK(cuda_device_count() == 2);
    CHECK(cuda_unavailable_reason().empty());
    CHECK(cuda::device_name(1) == "host emulation of cuda:1");
    CHECK_THROWS_WITH(cuda::HostEmulation(1), Contains("already active"));
    CHECK_THROWS_WITH(zeros({2}, TensorOptions().with_device(cuda_device(2))),
                      Contains("cuda:2") && Contains("2 device(s)"));
  }
  CHECK(cuda_available() == real_gpu);
  CHECK_THROWS_WITH(cuda::HostEmulation(0), Contains("devices must be >= 1"));
}

TEST_CASE("Tensor::to moves values between devices and carries gradients back", "[device]") {
  cuda::HostEmulation emulation(2);
  Tensor x = randn({3, 4}).requires_grad_(true);
  Tensor d0 = x.to(cuda_device(0));
  Tensor d1 = d0.to(cuda_device(1));
  CHECK(d0.device() == cuda_device(0));
  CHECK(d1.device() == cuda_device(1));
  CHECK(x.to(kCPU).is_same(x));  // already there: the tensor itself
  CHECK(allclose(d1.to(kCPU), x, 0, 0));

  // d(sum(3 * x))/dx = 3, computed on cuda:1 and delivered to the CPU leaf.
  sum(mul(d1, 3.0)).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().device() == kCPU);
  CHECK(allclose(x.grad(), full({3, 4}, 3.0), 0, 0));
}

TEST_CASE("operands on different devices are refused by name", "[device]") {
  cuda::HostEmulation emulation(2);
  Tensor host = ones({4});
  Tensor dev = ones({4}).to(cuda_device(0));
  CHECK_THROWS_WITH(add(host, dev), Contains("add: tensors on different devices, cpu vs cuda:0") &&
                                        Contains("to_device"));
  // Past the op's own check, the kernel table refuses a foreign operand.
  CHECK_THROWS_WITH(where(gt(dev, zeros({})), dev, dev),
                    Contains("a tensor on cpu reached the CUDA kernel") && Contains("to_device"));
  CHECK_THROWS_WITH(add(dev, ones({4}).to(cuda_device(1))),
                    Contains("different devices") && Contains("cuda:0") && Contains("cuda:1"));
}

TEST_CASE("set_data swaps a leaf's memory and keeps its identity", "[device]") {
  Tensor p = zeros({2, 2}).requires_grad_(true);
  Tensor alias = p;  // an optimizer's handle
  const uint64_t version = p.version();
  p.set_data(full({3}, 7.0));
  CHECK(alias.shape() == Shape{3});
  CHECK(alias.to_vector<float>() == std::vector<float>{7, 7, 7});
  CHECK(alias.requires_grad());
  CHECK(p.version() > version);
  Tensor y = mul(p, 2.0);
  CHECK_THROWS_WITH(y.set_data(zeros({3})), Contains("only a leaf"));
}

TEST_CASE("Module::to moves parameters, buffers and gradients in place", "[device]") {
  cuda::HostEmulation emulation;
  models::GPTConfig c;
  c.vocab_size = 50, c.d_model = 16, c.n_layers = 1, c.n_heads = 2, c.seq_len = 8;
  Generator gen(3);
  models::GPT model(c, &gen);
  const auto before = model.state_dict();
  Tensor wte = model.wte->weight;  // a handle held outside the module
  const Tensor wte_before = wte.clone();
  model.wte->weight.set_grad(ones(wte.shape()));

  model.to(cuda_device(0));
  for (const auto& [name, t] : model.state_dict()) {
    INFO(name);
    CHECK(t.device() == cuda_device(0));
  }
  CHECK(wte.device() == cuda_device(0));
  CHECK(wte.grad().device() == cuda_device(0));
  const auto after = model.state_dict();
  for (size_t i = 0; i < before.size(); ++i) {
    INFO(before[i].first);
    CHECK(allclose(after[i].second.to(kCPU), before[i].second, 0, 0));
  }
  // A forward pass runs on the device and generation brings tokens back.
  Tensor logits = model.forward(zeros({1, 4}, DType::i64).to(cuda_device(0)));
  CHECK(logits.device() == cuda_device(0));
  Generator sample(4);
  models::SamplingOptions greedy;
  greedy.temperature = 0, greedy.max_tokens = 3;
  CHECK(model.generate({1, 2}, greedy, sample).size() == 5);

  model.to(kCPU);
  CHECK(model.wte->weight.device() == kCPU);
  CHECK(allclose(model.wte->weight, wte_before, 0, 0));
}

TEST_CASE("Module::to names the tensor it cannot move", "[device]") {
  cuda::HostEmulation emulation(1);
  nn::Linear layer(3, 2);
  CHECK_THROWS_WITH(layer.to(cuda_device(1)),
                    Contains("Module::to(cuda:1)") && Contains("'weight'") && Contains("1 device(s)"));
  CHECK(layer.weight.device() == kCPU);  // nothing moved
}

TEST_CASE("a host-staged device group carries device tensors and refuses host ones, as NCCL does", "[device]") {
  cuda::HostEmulation emulation(1);
  const Device dev = cuda_device(0);
  auto group = dist::make_host_staged_process_group(std::make_shared<dist::LocalProcessGroup>(), dev);
  CHECK(group->backend() == "local (host-staged cuda:0)");
  Tensor t = from_vector(std::vector<float>{1, 2, 3}, {3}).to(dev);
  group->all_reduce(t, dist::ReduceOp::sum);  // one rank: unchanged, and still on the device
  CHECK(t.device() == dev);
  CHECK(t.to_vector<float>() == std::vector<float>{1, 2, 3});
  Tensor out = zeros({3}, TensorOptions(DType::f32).with_device(dev));
  auto work = group->all_gather_async(t, out);
  work->wait();  // the staged result lands on the device at completion
  CHECK(out.to_vector<float>() == std::vector<float>{1, 2, 3});
  CHECK(group->split(0, 0)->backend() == "local (host-staged cuda:0)");
  CHECK_THROWS_WITH(group->all_reduce(from_vector(std::vector<float>{1}, {1}), dist::ReduceOp::sum),
                    Contains("collective all_reduce") && Contains("a tensor on cpu") && Contains("cuda:0"));
  CHECK_THROWS_WITH(dist::make_host_staged_process_group(std::make_shared<dist::LocalProcessGroup>(), kCPU),
                    Contains("not a CUDA device"));
  // Without NCCL in the build (or on emulated devices) the device group is staged.
  CHECK(dist::make_device_process_group(std::make_shared<dist::LocalProcessGroup>(), dev)->backend() ==
        "local (host-staged cuda:0)");
}

TEST_CASE("the gradient norm sums gradients that live on different devices", "[device]") {
  cuda::HostEmulation emulation(2);
  Tensor a = zeros({2}, TensorOptions().with_requires_grad());
  Tensor b = zeros({1}, TensorOptions().with_device(cuda_device(0)).with_requires_grad());
  Tensor c = zeros({1}, TensorOptions().with_device(cuda_device(1)).with_requires_grad());
  a.set_grad(from_vector<float>({2, 4}, {2}));
  b.set_grad(from_vector<float>({4}, {1}).to(cuda_device(0)));
  c.set_grad(from_vector<float>({5}, {1}).to(cuda_device(1)));
  CHECK(optim::grad_norm({a, b, c}) == Approx(std::sqrt(61.0)));
  CHECK(optim::grad_norm({b, a}) == Approx(std::sqrt(36.0)));
}
