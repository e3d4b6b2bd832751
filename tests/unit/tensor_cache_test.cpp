// data::TensorCache: what it keeps, within its budget, under concurrent use.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include <loom/loom.hpp>

using namespace loom;

TEST_CASE("a cached tensor comes back with its values, and later writes to the original do not reach it",
          "[tensor_cache]") {
  data::TensorCache cache(1 << 20);
  Tensor value = arange(0, 12, 1, DType::f32).reshape({3, 4});
  REQUIRE_FALSE(cache.find(7).has_value());
  REQUIRE(cache.insert(7, value.transpose(0, 1)));  // a strided view is stored contiguous
  value.data<float>()[0] = 100.0f;
  const auto hit = cache.find(7);
  REQUIRE(hit.has_value());
  CHECK(hit->shape() == Shape{4, 3});
  CHECK(hit->is_contiguous());
  CHECK(hit->to_vector<float>() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  CHECK(cache.bytes() == 12 * 4);
  CHECK_FALSE(cache.insert(7, zeros({3})));  // a present key keeps its first value
  CHECK(cache.find(7)->numel() == 12);
}

TEST_CASE("the cache stops taking entries when the next one would pass its budget", "[tensor_cache]") {
  data::TensorCache cache(100);  // bytes: room for two 10-float tensors, not three
  CHECK(cache.insert(0, zeros({10})));
  CHECK(cache.insert(1, zeros({10})));
  CHECK_FALSE(cache.insert(2, zeros({10})));
  CHECK(cache.insert(3, zeros({5})));  // a smaller one still fits
  CHECK(cache.size() == 3);
  CHECK(cache.bytes() == 100);
  CHECK_FALSE(cache.find(2).has_value());

  data::TensorCache off(0);
  CHECK_FALSE(off.insert(0, zeros({1})));
  CHECK_THROWS_WITH(data::TensorCache(-1), Catch::Contains("must not be negative"));
}

TEST_CASE("concurrent inserts of the same and different keys never pass the budget", "[tensor_cache]") {
  data::TensorCache cache(64 * 40);  // 40 of the 64 distinct 16-float entries
  std::atomic<int> accepted{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&, w] {
      for (int k = 0; k < 64; ++k) {
        const int key = (k + 16 * w) % 64;  // every key is offered by all four workers
        if (cache.insert(key, full({16}, static_cast<double>(key)))) ++accepted;
      }
    });
  for (auto& t : workers) t.join();
  CHECK(accepted.load() == 40);
  CHECK(cache.size() == 40);
  CHECK(cache.bytes() == 40 * 64);
  for (int key = 0; key < 64; ++key)
    if (const auto hit = cache.find(key)) CHECK(hit->to_vector<float>() == std::vector<float>(16, key));
}
