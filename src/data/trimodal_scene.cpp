// The tri-modal scenes: vocabularies, the per-scene random draws, the
// caption grammar in English and Chinese, and the rendering (see
// loom/data/trimodal.hpp).
#include <algorithm>

#include "loom/core/error.hpp"
#include "loom/core/random.hpp"
#include "loom/data/trimodal.hpp"

namespace loom::data::trimodal {

const std::array<const char*, kNumClasses>& class_names_en() {
  static const std::array<const char*, kNumClasses> names = {
      "t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"};
  return names;
}
const std::array<const char*, kNumClasses>& class_names_zh() {
  static const std::array<const char*, kNumClasses> names = {"T恤", "裤子", "套头衫", "连衣裙", "外套",
                                                             "凉鞋", "衬衫", "运动鞋", "包",     "短靴"};
  return names;
}
const std::array<Colour, kNumColours>& colours() {
  static const std::array<Colour, kNumColours> table = {{{"red", "红色", {230, 40, 40}},
                                                         {"green", "绿色", {40, 200, 60}},
                                                         {"blue", "蓝色", {50, 80, 240}},
                                                         {"yellow", "黄色", {240, 220, 40}},
                                                         {"purple", "紫色", {150, 60, 200}},
                                                         {"orange", "橙色", {250, 140, 20}},
                                                         {"pink", "粉色", {250, 130, 190}},
                                                         {"white", "白色", {245, 245, 245}}}};
  return table;
}
const std::array<const char*, kNumPositions>& position_names() {
  static const std::array<const char*, kNumPositions> names = {"left", "right", "top", "bottom", "center"};
  return names;
}
const std::array<const char*, kNumDirections>& direction_names() {
  static const std::array<const char*, kNumDirections> names = {"right", "left", "up", "down"};
  return names;
}

namespace {

const char* const kPosEn[kNumPositions] = {"on the left", "on the right", "at the top", "at the bottom",
                                           "in the center"};
const char* const kPosZh[kNumPositions] = {"左边", "右边", "上边", "下边", "中间"};
const char* const kDirEn[kNumDirections] = {"to the right", "to the left", "up", "down"};
const char* const kDirZh[kNumDirections] = {"向右移动", "向左移动", "向上移动", "向下移动"};

// Independent Philox stream per (seed, split, purpose, index).
class Stream {
 public:
  Stream(uint64_t seed, uint32_t tag, uint64_t index) : key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)},
                                                        tag_(tag), index_(index) {}
  uint32_t next() {
    if (used_ == 4) {
      block_ = philox4x32({static_cast<uint32_t>(counter_), static_cast<uint32_t>(index_), static_cast<uint32_t>(index_ >> 32), tag_}, key_);
      ++counter_;
      used_ = 0;
    }
    return block_[used_++];
  }
  int uniform(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint32_t>(hi - lo + 1)); }  // [lo, hi]
  double unit() { return next() / 4294967296.0; }

 private:
  std::array<uint32_t, 2> key_;
  uint32_t tag_;
  uint64_t index_;
  uint64_t counter_ = 0;
  std::array<uint32_t, 4> block_{};
  int used_ = 4;
};

enum Purpose : uint32_t { kHeldOut = 1, kScene = 2, kVideo = 3 };
uint32_t tag(Purpose p, bool train) { return (static_cast<uint32_t>(p) << 1) | (train ? 1u : 0u); }

std::string np_en(const Item& it) {
  const char* colour = colours()[it.colour].en;
  const bool vowel = std::string("aeiou").find(colour[0]) != std::string::npos;
  return std::string(vowel ? "an " : "a ") + colour + " " + class_names_en()[it.cls];
}
std::string np_zh(const Item& it) { return std::string(colours()[it.colour].zh) + "的" + class_names_zh()[it.cls]; }

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}
template <class F>
std::vector<std::string> each(const std::vector<Item>& items, F f) {
  std::vector<std::string> out;
  for (size_t i = 0; i < items.size(); ++i) out.push_back(f(items[i], i));
  return out;
}

void check_items(const std::vector<Item>& items, const char* what) {
  LOOM_CHECK(!items.empty() && items.size() <= 2, what, ": expected one or two items, got ", items.size());
  for (const Item& it : items)
    LOOM_CHECK(it.cls >= 0 && it.cls < kNumClasses && it.colour >= 0 && it.colour < kNumColours &&
                   it.position >= 0 && it.position < kNumPositions,
               what, ": item out of range (class ", it.cls, ", colour ", it.colour, ", position ", it.position, ")");
}

bool is_held(const std::vector<std::pair<int, int>>& held, int colour, int cls) {
  return std::find(held.begin(), held.end(), std::make_pair(colour, cls)) != held.end();
}

// A colour x class pair: training draws only the pairs that are not held
// out; evaluation draws a held-out pair half of the time, else any pair.
std::pair<int, int> draw_pair(Stream& s, bool train, const std::vector<std::pair<int, int>>& held) {
  if (!train && !held.empty() && s.unit() < 0.5) return held[s.uniform(0, static_cast<int>(held.size()) - 1)];
  while (true) {
    const int colour = s.uniform(0, kNumColours - 1), cls = s.uniform(0, kNumClasses - 1);
    if (train && is_held(held, colour, cls)) continue;
    return {colour, cls};
  }
}

int64_t draw_source(Stream& s, const ClassIndex& classes, int cls) {
  const auto& list = classes[cls];
  LOOM_CHECK(!list.empty(), "trimodal: no Fashion-MNIST image of class ", cls, " in the split");
  return list[s.next() % list.size()];
}

// Top-left corner of a 28x28 item at `position` (before jitter).
std::pair<int, int> anchor(int position) {
  static const int xy[kNumPositions][2] = {{2, 18}, {34, 18}, {18, 2}, {18, 34}, {18, 18}};
  return {xy[position][0], xy[position][1]};
}

void draw_item(const uint8_t* image28, const std::array<uint8_t, 3>& rgb, int x0, int y0, uint8_t* canvas) {
  for (int r = 0; r < 28; ++r) {
    const int y = y0 + r;
    if (y < 0 || y >= kSide) continue;
    for (int c = 0; c < 28; ++c) {
      const int x = x0 + c;
      if (x < 0 || x >= kSide) continue;
      const unsigned v = image28[r * 28 + c];
      uint8_t* px = canvas + (static_cast<size_t>(y) * kSide + x) * 3;
      for (int k = 0; k < 3; ++k) px[k] = std::max<uint8_t>(px[k], static_cast<uint8_t>((rgb[k] * v + 127) / 255));
    }
  }
}

}  // namespace

std::vector<std::pair<int, int>> held_out_pairs(uint64_t seed) {
  std::vector<std::pair<int, int>> all;
  for (int colour = 0; colour < kNumColours; ++colour)
    for (int cls = 0; cls < kNumClasses; ++cls) all.emplace_back(colour, cls);
  Stream s(seed, tag(kHeldOut, true), 0);
  for (size_t i = all.size() - 1; i > 0; --i) std::swap(all[i], all[s.next() % (i + 1)]);  // Fisher-Yates
  all.resize(all.size() / 10);
  std::sort(all.begin(), all.end());
  return all;
}

std::string caption_en(const std::vector<Item>& items) {
  check_items(items, "caption_en");
  return join(each(items, [](const Item& it, size_t) { return np_en(it) + " " + kPosEn[it.position]; }), " and ");
}
std::string caption_zh(const std::vector<Item>& items) {
  check_items(items, "caption_zh");
  return join(each(items, [](const Item& it, size_t) { return std::string(kPosZh[it.position]) + "是" + np_zh(it); }),
              "，");
}
std::vector<std::string> paraphrases_en(const std::vector<Item>& items) {
  check_items(items, "paraphrases_en");
  return {"there is " + caption_en(items), "a picture with " + caption_en(items),
          join(each(items, [](const Item& it, size_t) { return std::string(kPosEn[it.position]) + " there is " + np_en(it); }),
               " and ")};
}
std::vector<std::string> paraphrases_zh(const std::vector<Item>& items) {
  check_items(items, "paraphrases_zh");
  return {join(each(items, [](const Item& it, size_t) { return np_zh(it) + "在" + kPosZh[it.position]; }), "，"),
          "图中" + join(each(items, [](const Item& it, size_t) { return std::string(kPosZh[it.position]) + "有一个" + np_zh(it); }),
                        "，")};
}
std::string motion_caption_en(const Item& item, int direction) {
  LOOM_CHECK(direction >= 0 && direction < kNumDirections, "motion_caption_en: direction ", direction, " out of range");
  return np_en(item) + " moving " + kDirEn[direction];
}
std::string motion_caption_zh(const Item& item, int direction) {
  LOOM_CHECK(direction >= 0 && direction < kNumDirections, "motion_caption_zh: direction ", direction, " out of range");
  return np_zh(item) + kDirZh[direction];
}

ClassIndex class_index(const std::vector<uint8_t>& labels) {
  ClassIndex out;
  for (size_t i = 0; i < labels.size(); ++i) {
    LOOM_CHECK(labels[i] < kNumClasses, "trimodal: Fashion-MNIST label ", int(labels[i]), " at index ", i,
               " is out of range [0, 10)");
    out[labels[i]].push_back(static_cast<int64_t>(i));
  }
  return out;
}

Scene make_scene(uint64_t seed, bool train, int64_t index, const ClassIndex& classes) {
  const auto held = held_out_pairs(seed);
  Stream s(seed, tag(kScene, train), static_cast<uint64_t>(index));
  Scene scene;
  const int n = s.unit() < 0.4 ? 1 : 2;
  std::vector<int> positions;
  if (n == 1) positions = {s.uniform(0, kNumPositions - 1)};
  else positions = s.unit() < 0.5 ? std::vector<int>{0, 1} : std::vector<int>{2, 3};
  for (int k = 0; k < n; ++k) {
    Item it;
    std::tie(it.colour, it.cls) = draw_pair(s, train, held);
    it.position = positions[k];
    it.source = draw_source(s, classes, it.cls);
    it.dx = s.uniform(-2, 2);
    it.dy = s.uniform(-2, 2);
    scene.held_out = scene.held_out || is_held(held, it.colour, it.cls);
    scene.items.push_back(it);
  }
  scene.en = caption_en(scene.items);
  scene.zh = caption_zh(scene.items);
  scene.paraphrases_en = paraphrases_en(scene.items);
  scene.paraphrases_zh = paraphrases_zh(scene.items);
  scene.rate_en = s.uniform(140, 200);
  scene.pitch_en = s.uniform(25, 75);
  scene.rate_zh = s.uniform(230, 300);  // cmn counts syllables: 175 would take ~6 s per caption
  scene.pitch_zh = s.uniform(25, 75);
  scene.lead_en = s.uniform(0, 800);
  scene.lead_zh = s.uniform(0, 800);
  return scene;
}

Video make_video(uint64_t seed, bool train, int64_t index, const ClassIndex& classes) {
  const auto held = held_out_pairs(seed);
  Stream s(seed, tag(kVideo, train), static_cast<uint64_t>(index));
  Video v;
  std::tie(v.item.colour, v.item.cls) = draw_pair(s, train, held);
  v.item.position = 4;
  v.item.source = draw_source(s, classes, v.item.cls);
  v.item.dx = s.uniform(-2, 2);
  v.item.dy = s.uniform(-2, 2);
  v.direction = s.uniform(0, kNumDirections - 1);
  v.held_out = is_held(held, v.item.colour, v.item.cls);
  v.en = motion_caption_en(v.item, v.direction);
  v.zh = motion_caption_zh(v.item, v.direction);
  return v;
}

void render_scene(const Scene& scene, const uint8_t* images, uint8_t* rgb) {
  for (const Item& it : scene.items) {
    const auto [x, y] = anchor(it.position);
    draw_item(images + it.source * 28 * 28, colours()[it.colour].rgb, x + it.dx, y + it.dy, rgb);
  }
}

void render_video(const Video& video, const uint8_t* images, uint8_t* frames) {
  const Item& it = video.item;
  for (int f = 0; f < kVideoFrames; ++f) {
    const int travel = (32 * f + (kVideoFrames - 1) / 2) / (kVideoFrames - 1);  // 0 .. 32 pixels
    int x = 18 + it.dx, y = 18 + it.dy;
    switch (video.direction) {
      case 0: x = 2 + travel; break;
      case 1: x = 34 - travel; break;
      case 2: y = 34 - travel; break;
      default: y = 2 + travel; break;
    }
    draw_item(images + it.source * 28 * 28, colours()[it.colour].rgb, x, y,
              frames + static_cast<size_t>(f) * kSide * kSide * 3);
  }
}

}  // namespace loom::data::trimodal
