// A short load run on loopback (label serve_load): concurrent keep-alive
// clients get answers without errors, and the report adds up.
#include <catch2/catch.hpp>

#include "serve/load_client.hpp"
#include "world.hpp"

using namespace loom;
using namespace loom::serve_test;

TEST_CASE("eight clients posting captions for two seconds get no errors", "[load]") {
  TestServer server;
  serve::LoadOptions o;
  o.port = server.port();
  o.clients = 8;
  o.seconds = 2;
  o.path = "/v1/caption";
  o.body = serve::sample_request_body("127.0.0.1", server.port(), "caption");
  const auto r = serve::run_load(o);
  INFO(r.first_error);
  CHECK(r.errors == 0);
  CHECK(r.requests >= o.clients);
  CHECK(r.statuses.at(200) == r.requests);
  CHECK(r.seconds >= 2.0);
  CHECK(r.requests_per_second == Approx(static_cast<double>(r.requests) / r.seconds));
  CHECK(r.p50_ms > 0);
  CHECK(r.p99_ms >= r.p50_ms);
  CHECK_THROWS_WITH(serve::sample_request_body("127.0.0.1", server.port(), "dance"), Catch::Contains("unknown endpoint"));
}
