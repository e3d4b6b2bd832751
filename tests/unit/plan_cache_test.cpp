// The vendor plan cache (cuda/plan_cache.hpp): host code, so it is checked on
// every machine. One plan per key, declines remembered, bounded, thread-safe.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../../cuda/plan_cache.hpp"  // host code, no CUDA needed

using loom::cuda::PlanCache;
using loom::cuda::PlanKey;

TEST_CASE("plan cache: a plan is made once per key and shared after", "[plan_cache]") {
  PlanCache<int> cache;
  int made = 0;
  const auto make = [&](int value) {
    return [&made, value] {
      ++made;
      return std::make_shared<int>(value);
    };
  };
  const auto a = cache.get({0, 64, 128}, make(1));
  const auto again = cache.get({0, 64, 128}, make(2));
  const auto other = cache.get({0, 64, 129}, make(3));
  CHECK(made == 2);
  CHECK(a.get() == again.get());  // the same plan object, not a second build
  CHECK(*again == 1);
  CHECK(*other == 3);
  CHECK(cache.size() == 2);
}

TEST_CASE("plan cache: a declined key is remembered, a failed build is not", "[plan_cache]") {
  PlanCache<int> cache;
  int asked = 0;
  const auto decline = [&] {
    ++asked;
    return std::shared_ptr<int>();
  };
  CHECK(cache.get({7}, decline) == nullptr);
  CHECK(cache.get({7}, decline) == nullptr);
  CHECK(asked == 1);

  CHECK_THROWS_AS(cache.get({8}, []() -> std::shared_ptr<int> { throw std::runtime_error("driver error"); }),
                  std::runtime_error);
  CHECK(*cache.get({8}, [] { return std::make_shared<int>(5); }) == 5);  // asked again after the throw
}

TEST_CASE("plan cache: full, it starts over instead of growing", "[plan_cache]") {
  PlanCache<int> cache(3);
  for (int64_t i = 0; i < 3; ++i) cache.get({i}, [i] { return std::make_shared<int>(static_cast<int>(i)); });
  CHECK(cache.size() == 3);
  cache.get({3}, [] { return std::make_shared<int>(3); });
  CHECK(cache.size() == 1);
  int made = 0;
  cache.get({0}, [&] {
    ++made;
    return std::make_shared<int>(0);
  });
  CHECK(made == 1);  // the old keys went with the clear
}

TEST_CASE("plan cache: threads asking for one key build it once", "[plan_cache]") {
  PlanCache<int> cache;
  std::atomic<int> made{0};
  std::vector<std::shared_ptr<int>> got(8);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      got[t] = cache.get({1, 2, 3}, [&] {
        ++made;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a slow build others must wait for
        return std::make_shared<int>(42);
      });
    });
  for (auto& th : threads) th.join();
  CHECK(made == 1);
  for (const auto& p : got) CHECK(p.get() == got[0].get());
}
