// Bad input raises loom::Error naming the op and what was wrong; never a crash.
#include <catch2/catch.hpp>

#include <loom/core/cuda.hpp>
#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

TEST_CASE("shape mismatches name the op and both shapes", "[errors]") {
  CHECK_THROWS_AS(add(ones({2, 3}), ones({4})), Error);
  CHECK_THROWS_WITH(add(ones({2, 3}), ones({4})), Contains("add") && Contains("[2, 3]") && Contains("[4]"));
  CHECK_THROWS_WITH(matmul(ones({2, 3}), ones({4, 5})), Contains("matmul") && Contains("[2, 3]") && Contains("[4, 5]"));
  CHECK_THROWS_WITH(linear(ones({2, 3}), ones({5, 4})), Contains("linear") && Contains("[5, 4]"));
  CHECK_THROWS_WITH(ones({6}).view({4, -1}), Contains("view") && Contains("[6]"));
  CHECK_THROWS_WITH(cat({ones({2, 3}), ones({2, 4})}, 0), Contains("cat") && Contains("[2, 4]"));
  CHECK_THROWS_WITH(layer_norm(ones({2, 3}), {4}), Contains("layer_norm") && Contains("[2, 3]"));
  CHECK_THROWS_WITH(conv2d(ones({1, 2, 4, 4}), ones({3, 1, 2, 2})), Contains("conv2d") && Contains("[3, 1, 2, 2]"));
  CHECK_THROWS_WITH(cross_entropy(ones({4, 3}), zeros({5}, DType::i64)), Contains("cross_entropy") && Contains("[5]"));
  CHECK_THROWS_WITH(ones({2, 3}).expand({4, 3}), Contains("expand") && Contains("[2, 3]"));
}

TEST_CASE("dtype mismatches name the op and both dtypes", "[errors]") {
  // (two floating dtypes promote to the wider one: tests/unit/autocast_test.cpp)
  CHECK_THROWS_WITH(add(ones({2}), ones({2}, DType::i32)), Contains("add") && Contains("f32") && Contains("i32"));
  CHECK_THROWS_WITH(matmul(ones({2, 2}), ones({2, 2}, DType::i64)), Contains("matmul") && Contains("i64"));
  CHECK_THROWS_WITH(exp(ones({2}, DType::i32)), Contains("exp") && Contains("i32"));
  CHECK_THROWS_WITH(embedding(ones({4, 2}), ones({3})), Contains("embedding") && Contains("f32"));
  CHECK_THROWS_WITH(where(ones({2}), ones({2}), ones({2})), Contains("where") && Contains("bool"));
}

TEST_CASE("indices out of range name the op and the index", "[errors]") {
  CHECK_THROWS_WITH(embedding(ones({4, 2}), from_vector<int64_t>({1, 4}, {2})),
                    Contains("embedding") && Contains("index 4") && Contains("size 4"));
  CHECK_THROWS_WITH(index_select(ones({3, 2}), 0, from_vector<int64_t>({-1}, {1})), Contains("index_select"));
  CHECK_THROWS_WITH(gather(ones({3, 2}), 1, from_vector<int64_t>({0, 2, 1}, {3, 1})), Contains("gather") && Contains("index 2"));
  CHECK_THROWS_WITH(cross_entropy(ones({2, 3}), from_vector<int64_t>({0, 3}, {2})),
                    Contains("cross_entropy") && Contains("target 3"));
  CHECK_THROWS_WITH(ones({3, 4}).narrow(1, 2, 3), Contains("narrow") && Contains("[2, 5)"));
  CHECK_THROWS_WITH(sum(ones({3, 4}), {2}), Contains("sum") && Contains("dim 2"));
  CHECK_THROWS_WITH(ones({3}).select(0, 3), Contains("select") && Contains("index 3"));
}

TEST_CASE("misuse of tensors is reported, not crashed on", "[errors]") {
  CHECK_THROWS_WITH(ones({2, 2}).item<float>(), Contains("item") && Contains("[2, 2]"));
  CHECK_THROWS_WITH(ones({2}).data<double>(), Contains("f32"));
  CHECK_THROWS_WITH(add(Tensor(), ones({2})), Contains("add") && Contains("undefined"));
  CHECK_THROWS_WITH(Tensor().shape(), Contains("undefined"));
  CHECK_THROWS_WITH(ones({2}).backward(), Contains("does not require grad"));
  if (!cuda_available())  // a CPU-only build or machine names the device it cannot allocate on
    CHECK_THROWS_WITH(empty({2}, TensorOptions().with_device(Device(DeviceType::CUDA))), Contains("cuda:0"));
  CHECK_THROWS_WITH(from_vector<float>({1, 2, 3}, {2, 2}), Contains("from_vector") && Contains("[2, 2]"));
  CHECK_THROWS_WITH(permute(ones({2, 3}), {0, 0}), Contains("permute") && Contains("repeated"));
}
