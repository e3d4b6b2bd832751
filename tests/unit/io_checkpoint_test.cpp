// Checkpoints: SHA-256 known answers, atomic files and directories, round
// trips, refusal of truncated / bit-flipped / incomplete checkpoints, listing
// and pruning, and a crash test that SIGKILLs a writer at random moments.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <loom/io/atomic_file.hpp>
#include <loom/io/checkpoint.hpp>
#include <loom/io/manifest.hpp>
#include <loom/io/safetensors.hpp>
#include <loom/io/sha256.hpp>
#include <loom/loom.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>

using namespace loom;
using namespace loom::io;
using Catch::Contains;

namespace {

namespace fs = std::filesystem;

using loom::testing::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * itemsize(c.dtype()));
}

bool same_tensors(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || a[i].second.dtype() != b[i].second.dtype() ||
        a[i].second.shape() != b[i].second.shape() || bytes_of(a[i].second) != bytes_of(b[i].second))
      return false;
  return true;
}

// A checkpoint whose every value is derived from `step`.
CheckpointContent content_for(int64_t step, int64_t width = 32) {
  CheckpointContent c;
  c.weights = {{"layer.weight", full({width, width}, static_cast<double>(step))},
               {"layer.bias", arange(0, static_cast<double>(width), 1, DType::f64)},
               {"embed", full({4, 3}, static_cast<double>(step % 100), DType::bf16)}};
  c.optimizer = {{"layer.weight.exp_avg", full({width, width}, -static_cast<double>(step))},
                 {"step", scalar_tensor(static_cast<double>(step), DType::i64)}};
  c.state = {{"step", step}, {"rng", {{"seed", 42}, {"offset", step * 4}}}, {"recipe", {{"lr", 0.001}}}};
  return c;
}

bool matches(const CheckpointContent& got, int64_t step, int64_t width = 32) {
  const CheckpointContent want = content_for(step, width);
  return same_tensors(got.weights, want.weights) && same_tensors(got.optimizer, want.optimizer) &&
         got.state == want.state;
}

}  // namespace

TEST_CASE("SHA-256 matches the NIST example vectors", "[io][sha256]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string v448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(sha256_hex(v448) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  const std::string million(1000000, 'a');
  CHECK(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

  // Incremental updates in every split give the same digest, across the
  // 55/56/64-byte padding boundaries.
  for (size_t len : {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200}) {
    const std::string msg(len, 'x');
    const std::string whole = sha256_hex(msg);
    for (size_t cut = 0; cut <= len; cut += 7) {
      Sha256 h;
      h.update(msg.substr(0, cut));
      h.update(msg.substr(cut));
      CHECK(h.hex_digest() == whole);
    }
  }
  Sha256 done;
  done.hex_digest();
  CHECK_THROWS_WITH(done.update("x"), Contains("already taken"));
}

TEST_CASE("atomic files replace the old contents whole and leave no temp file", "[io][atomic]") {
  TempDir dir;
  const std::string path = dir.str() + "/f.txt";
  atomic_write_file(path, "first");
  atomic_write_file(path, "second");
  CHECK(read_file(path) == "second");
  {
    AtomicFile f(path);
    f.write("unfinished");
    CHECK(fs::exists(f.temp_path()));
    CHECK(f.temp_path() == path + ".tmp." + std::to_string(::getpid()));
  }  // dropped without commit
  CHECK(read_file(path) == "second");
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  CHECK_THROWS_WITH(atomic_write_file(dir.str() + "/no/such/dir/f", "x"), Contains("cannot create"));
  CHECK(is_temp_name("step-00000001.tmp-123"));
  CHECK(is_temp_name("w.safetensors.tmp.99"));
  CHECK_FALSE(is_temp_name("step-00000001"));
}

TEST_CASE("atomic directories appear whole, and replace an existing one", "[io][atomic]") {
  TempDir dir;
  const std::string target = dir.str() + "/a/b/ckpt";
  {
    AtomicDir d(target);
    CHECK(d.path() == target + ".tmp-" + std::to_string(::getpid()));
    atomic_write_file(d.file("x"), "1");
    CHECK_FALSE(fs::exists(target));
  }  // dropped without commit: nothing appears, the temp dir is gone
  CHECK_FALSE(fs::exists(target));
  CHECK(fs::is_empty(dir.str() + "/a/b"));
  {
    AtomicDir d(target);
    atomic_write_file(d.file("x"), "1");
    d.commit();
  }
  CHECK(read_file(target + "/x") == "1");
  {
    AtomicDir d(target + "/");  // a trailing slash names the same directory
    atomic_write_file(d.file("y"), "2");
    d.commit();
  }
  CHECK_FALSE(fs::exists(target + "/x"));
  CHECK(read_file(target + "/y") == "2");
  CHECK(std::distance(fs::directory_iterator(dir.str() + "/a/b"), fs::directory_iterator()) == 1);
}

TEST_CASE("checkpoints round trip weights, optimizer state and JSON state", "[io][checkpoint]") {
  TempDir run;
  const std::string dir = checkpoint_dir(run.str(), 42);
  CHECK(dir == run.str() + "/checkpoints/step-00000042");
  save_checkpoint(dir, content_for(42));
  CHECK(matches(load_checkpoint(dir), 42));

  const Manifest m = parse_manifest(read_file(dir + "/manifest.json"), "manifest.json");
  REQUIRE(m.files.size() == 3);
  for (const auto& e : m.files) {
    INFO(e.name);
    CHECK(e.bytes == fs::file_size(dir + "/" + e.name));
    CHECK(e.sha256 == sha256_hex(read_file(dir + "/" + e.name)));
  }
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  CHECK(names == std::set<std::string>{"manifest.json", "optimizer.safetensors", "state.json", "weights.safetensors"});

  // Saving again replaces it whole.
  save_checkpoint(dir, content_for(7));
  CHECK(matches(load_checkpoint(dir), 7));
  CHECK(list_checkpoints(run.str()) == std::vector<std::string>{dir});

  // An empty checkpoint is still a checkpoint.
  save_checkpoint(dir, CheckpointContent{});
  const CheckpointContent empty_back = load_checkpoint(dir);
  CHECK(empty_back.weights.empty());
  CHECK(empty_back.state == nlohmann::json::object());
}

TEST_CASE("a truncated checkpoint file is refused, naming the file", "[io][checkpoint][errors]") {
  TempDir run;
  const std::string dir = checkpoint_dir(run.str(), 1);
  save_checkpoint(dir, content_for(1));
  for (const char* name : {"weights.safetensors", "optimizer.safetensors", "state.json"}) {
    INFO(name);
    const std::string path = dir + "/" + name;
    const std::string good = read_file(path);
    for (size_t keep : {size_t{0}, size_t{7}, good.size() / 2, good.size() - 1}) {
      write_file(path, good.substr(0, keep));
      CHECK_THROWS_WITH(load_checkpoint(dir), Contains(path) && Contains("is " + std::to_string(keep) + " bytes") &&
                                                  Contains("lists " + std::to_string(good.size())));
    }
    write_file(path, good + "x");  // grown is refused too
    CHECK_THROWS_WITH(load_checkpoint(dir), Contains(path) && Contains("truncated or changed"));
    write_file(path, good);
    CHECK(matches(load_checkpoint(dir), 1));
  }
  const std::string manifest = dir + "/manifest.json";
  const std::string good = read_file(manifest);
  for (size_t keep = 0; keep < good.size(); keep += 13) {
    write_file(manifest, good.substr(0, keep));
    CHECK_THROWS_WITH(load_checkpoint(dir), Contains("manifest"));
  }
  write_file(manifest, good);
  CHECK(matches(load_checkpoint(dir), 1));
}

TEST_CASE("a single flipped bit anywhere in a checkpoint is refused", "[io][checkpoint][errors]") {
  TempDir run;
  const std::string dir = checkpoint_dir(run.str(), 3);
  save_checkpoint(dir, content_for(3, 8));
  std::mt19937 rng(99);
  for (const char* name : {"weights.safetensors", "optimizer.safetensors", "state.json"}) {
    INFO(name);
    const std::string path = dir + "/" + name;
    const std::string good = read_file(path);
    std::vector<size_t> positions = {0, 8, good.size() / 2, good.size() - 1};
    for (int i = 0; i < 12; ++i) positions.push_back(rng() % good.size());
    for (size_t at : positions) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ (1 << (rng() % 8)));
      write_file(path, bad);
      CHECK_THROWS_WITH(load_checkpoint(dir), Contains(path) && Contains("has SHA-256") && Contains("corrupted"));
    }
    write_file(path, good);
  }
  // The manifest is not hashed itself: every one of its bits is checked, in
  // memory (as verify_checkpoint does: parse, the three files, their sizes and
  // digests), and a sample of them on disk.
  const std::string manifest = dir + "/manifest.json";
  const std::string good = read_file(manifest);
  int refused = 0;
  for (size_t at = 0; at < good.size(); ++at) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ (1 << bit));
      try {
        const Manifest m = parse_manifest(bad, "manifest.json");
        const bool lists_the_three = m.files.size() == 3 && m.find("weights.safetensors") &&
                                     m.find("optimizer.safetensors") && m.find("state.json");
        if (!lists_the_three) throw Error("verify_checkpoint refuses it: not the three files");
        verify_manifest(dir, m);
        FAIL("a flip of bit " << bit << " of byte " << at << " of manifest.json was not noticed");
      } catch (const Error&) {
        ++refused;
      }
    }
  }
  CHECK(refused == static_cast<int>(good.size() * 8));
  for (int i = 0; i < 24; ++i) {
    std::string bad = good;
    const size_t at = rng() % bad.size();
    bad[at] = static_cast<char>(bad[at] ^ (1 << (rng() % 8)));
    write_file(manifest, bad);
    CHECK_THROWS_AS(load_checkpoint(dir), Error);
  }
  write_file(manifest, good);
  CHECK(matches(load_checkpoint(dir), 3, 8));
}

TEST_CASE("incomplete or malformed checkpoints are refused before any parsing", "[io][checkpoint][errors]") {
  TempDir run;
  const std::string dir = checkpoint_dir(run.str(), 5);
  CHECK_THROWS_WITH(load_checkpoint(dir), Contains(dir) && Contains("not a directory"));
  save_checkpoint(dir, content_for(5));
  const std::string manifest_path = dir + "/manifest.json";
  const std::string manifest = read_file(manifest_path);

  fs::rename(dir + "/state.json", dir + "/state.json.bak");
  CHECK_THROWS_WITH(load_checkpoint(dir), Contains(dir + "/state.json") && Contains("missing"));
  fs::rename(dir + "/state.json.bak", dir + "/state.json");

  fs::remove(manifest_path);
  CHECK_THROWS_WITH(load_checkpoint(dir), Contains("has no manifest.json"));

  auto with_manifest = [&](const std::string& text) {
    write_file(manifest_path, text);
    return text;
  };
  with_manifest("{\"format\":\"loom-checkpoint\",\"version\":1,\"files\":[]}");
  CHECK_THROWS_WITH(load_checkpoint(dir), Contains("does not list weights.safetensors"));
  with_manifest("not json");
  CHECK_THROWS_WITH(load_checkpoint(dir), Contains(manifest_path) && Contains("not valid JSON"));
  with_manifest("{\"format\":\"other\",\"version\":1,\"files\":[]}");
  CHECK_THROWS_WITH(load_checkpoint(dir), Contains("\"format\" is \"other\""));
  with_manifest("{\"format\":\"loom-checkpoint\",\"version\":2,\"files\":[]}");
  CHECK_THROWS_WITH(load_checkpoint(dir), Contains("\"version\" is 2"));

  // One more listed file than the three expected.
  Manifest m = parse_manifest(manifest, "m");
  write_file(dir + "/extra.bin", "extra");
  m.files.push_back(describe_file(dir, "extra.bin"));
  with_manifest(manifest_to_json(m));
  CHECK_THROWS_WITH(load_checkpoint(dir), Contains("lists 4 files"));

  // Only plain names: the manifest cannot point outside the checkpoint.
  CHECK_THROWS_WITH(parse_manifest(R"({"format":"loom-checkpoint","version":1,"files":[{"name":"../x","bytes":1,"sha256":")" +
                                       std::string(64, 'a') + "\"}]}",
                                   "m.json"),
                    Contains("m.json") && Contains("not a plain file name"));
  const std::string entry = R"({"name":"a","bytes":1,"sha256":")" + std::string(64, 'a') + "\"}";
  auto files = [](const std::string& list) {
    return R"({"format":"loom-checkpoint","version":1,"files":[)" + list + "]}";
  };
  CHECK_NOTHROW(parse_manifest(files(entry), "m"));
  CHECK_THROWS_WITH(parse_manifest(files(entry + "," + entry), "m"), Contains("\"a\" is listed twice"));
  CHECK_THROWS_WITH(parse_manifest(files(R"({"name":"a","bytes":-1,"sha256":")" + std::string(64, 'a') + "\"}"), "m"),
                    Contains("\"bytes\" is -1"));
  CHECK_THROWS_WITH(parse_manifest(files(R"({"name":"a","bytes":1,"sha256":")" + std::string(64, 'A') + "\"}"), "m"),
                    Contains("64 lowercase hex"));
  CHECK_THROWS_WITH(parse_manifest(files(R"({"name":"a","bytes":1})"), "m"), Contains("has no \"sha256\""));
  CHECK_THROWS_WITH(parse_manifest(files(R"({"name":"a","name":"b","bytes":1})"), "m"), Contains("appears twice"));
  CHECK_THROWS_WITH(parse_manifest(std::string(kMaxManifestBytes + 1, ' '), "m"), Contains("at most"));

  // Once the manifest matches again, it loads.
  with_manifest(manifest);
  CHECK(matches(load_checkpoint(dir), 5));
}

TEST_CASE("checkpoints are listed by step, ignoring leftovers, and pruned", "[io][checkpoint]") {
  TempDir run;
  CHECK(list_checkpoints(run.str()).empty());
  CHECK(list_checkpoints(run.str() + "/does-not-exist").empty());
  for (int64_t step : {10, 9, 100000000, 11}) save_checkpoint(checkpoint_dir(run.str(), step), content_for(step, 2));
  const std::string ck = run.str() + "/checkpoints/";
  // Leftovers of killed writers and unrelated entries.
  fs::create_directories(ck + "step-00000012.tmp-4242");
  fs::create_directories(ck + "step-00000013.tmp-4242-old");
  fs::create_directories(ck + "step-x");
  fs::create_directories(ck + "notes");
  write_file(ck + "step-00000014", "a file, not a directory");

  const auto listed = list_checkpoints(run.str());
  CHECK(listed == std::vector<std::string>{ck + "step-00000009", ck + "step-00000010", ck + "step-00000011",
                                           ck + "step-100000000"});
  CHECK(checkpoint_step(listed.back()) == 100000000);
  CHECK(checkpoint_step(listed.front() + "/") == 9);
  CHECK_THROWS_WITH(checkpoint_step(ck + "notes"), Contains("step-<digits>"));
  CHECK(matches(load_checkpoint(listed.back()), 100000000, 2));

  prune_checkpoints(run.str(), 2);
  CHECK(list_checkpoints(run.str()) == std::vector<std::string>{ck + "step-00000011", ck + "step-100000000"});
  prune_checkpoints(run.str(), 5);
  CHECK(list_checkpoints(run.str()).size() == 2);
  CHECK_THROWS_WITH(prune_checkpoints(run.str(), 0), Contains("at least 1"));
  CHECK(fs::exists(ck + "step-00000012.tmp-4242"));  // leftovers are left alone
  CHECK_FALSE(fs::exists(ck + "step-00000009"));
}

TEST_CASE("a writer killed at random moments never leaves a bad latest checkpoint", "[io][checkpoint][crash]") {
  TempDir run;
  std::mt19937 rng(2024);
  int64_t last_seen = -1;
  int kills = 0;
  for (int round = 0; round < 8; ++round) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // The child keeps saving new checkpoints (and pruning old ones) until killed.
      try {
        const auto existing = list_checkpoints(run.str());
        int64_t step = existing.empty() ? 1 : checkpoint_step(existing.back()) + 1;
        for (;; ++step) {
          save_checkpoint(checkpoint_dir(run.str(), step), content_for(step, 64));
          prune_checkpoints(run.str(), 3);
        }
      } catch (...) {
        ::_exit(3);
      }
    }
    // Let it run into the middle of some save (the first round long enough
    // for at least one checkpoint to exist).
    const int ms = (round == 0 ? 150 : 5) + static_cast<int>(rng() % 60);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      REQUIRE(::waitpid(child, &status, WNOHANG) == 0);  // the writer must not die by itself
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(::kill(child, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    ++kills;

    const auto listed = list_checkpoints(run.str());
    if (round == 0 && listed.empty()) continue;  // a slow machine: nothing finished yet
    REQUIRE_FALSE(listed.empty());
    const int64_t latest = checkpoint_step(listed.back());
    INFO("round " << round << ", latest step " << latest);
    CHECK(latest >= last_seen);  // a checkpoint that existed is never lost
    last_seen = latest;
    CHECK(matches(load_checkpoint(listed.back()), latest, 64));
    for (const auto& dir : listed) CHECK_NOTHROW(verify_checkpoint(dir));
  }
  CHECK(kills == 8);
  CHECK(last_seen >= 1);
}
