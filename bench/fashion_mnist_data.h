// Fashion-MNIST for the model benches: the 10k test split and 256 training images for
// calibration from Debian's dataset-fashion-mnist (IDX, gzipped), else the committed test images.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tessera/npy.h"
#include "tessera/session.h"
#include "tessera/tensor.h"

namespace tessera::bench_data {

inline const char* kDatasetDir = "/usr/share/datasets/fashion-mnist/";
inline const std::string kModelDir = std::string(TESSERA_SOURCE_DIR) + "/models/trained/";

// An IDX file of unsigned bytes (gzipped), read through gzip -dc; empty when missing.
inline std::vector<uint8_t> read_idx_gz(const std::string& path, int header_bytes) {
  std::vector<uint8_t> bytes;
  if (FILE* probe = std::fopen(path.c_str(), "rb")) std::fclose(probe);
  else return bytes;
  FILE* pipe = popen(("gzip -dc '" + path + "'").c_str(), "r");
  if (!pipe) return bytes;
  uint8_t buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) bytes.insert(bytes.end(), buffer, buffer + got);
  pclose(pipe);
  if (bytes.size() < size_t(header_bytes)) return {};
  return std::vector<uint8_t>(bytes.begin() + header_bytes, bytes.end());
}

inline Tensor normalized_images(const std::vector<uint8_t>& pixels, int64_t count, int64_t first = 0) {
  Tensor t(DType::f32, {count, 1, 28, 28});
  for (int64_t i = 0; i < count * 784; ++i)
    t.data<float>()[i] = (float(pixels[size_t(first * 784 + i)]) / 255.f - 0.2860f) / 0.3530f;
  return t;
}

inline Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  Shape shape = t.shape();
  const size_t row_bytes = t.nbytes() / size_t(shape[0]);
  shape[0] = end - begin;
  Tensor out(t.dtype(), shape);
  std::memcpy(out.raw_data(), static_cast<const char*>(t.raw_data()) + size_t(begin) * row_bytes, out.nbytes());
  return out;
}

struct Data {
  Tensor test_images, calibration;
  std::vector<int64_t> test_labels;
  std::string test_source, calibration_source;
};

inline const Data& data() {
  static const Data loaded = [] {
    Data d;
    const auto test_pixels = read_idx_gz(std::string(kDatasetDir) + "t10k-images-idx3-ubyte.gz", 16);
    const auto test_labels = read_idx_gz(std::string(kDatasetDir) + "t10k-labels-idx1-ubyte.gz", 8);
    const auto train_pixels = read_idx_gz(std::string(kDatasetDir) + "train-images-idx3-ubyte.gz", 16);
    if (test_pixels.size() == 10000 * 784 && test_labels.size() == 10000) {
      d.test_images = normalized_images(test_pixels, 10000);
      d.test_labels.assign(test_labels.begin(), test_labels.end());
      d.test_source = "Fashion-MNIST test split, 10000 images";
    } else {
      d.test_images = read_npy(kModelDir + "test_images.npy");
      const Tensor labels = read_npy(kModelDir + "test_labels.npy");
      d.test_labels.assign(labels.data<int64_t>(), labels.data<int64_t>() + labels.numel());
      d.test_source = "committed first 1000 test images";
    }
    if (train_pixels.size() >= 256 * 784) {
      d.calibration = normalized_images(train_pixels, 256);
      d.calibration_source = "first 256 training images";
    } else {
      d.calibration = rows(read_npy(kModelDir + "test_images.npy"), 1000 - 64, 1000);
      d.calibration_source = "last 64 committed test images (no training split found)";
    }
    std::printf("accuracy on: %s; calibration: %s\n", d.test_source.c_str(), d.calibration_source.c_str());
    return d;
  }();
  return loaded;
}

// Test images the session classifies right (logits output of 10 classes; batches of 250).
inline int64_t count_correct(Session& session) {
  const Data& d = data();
  const int64_t count = d.test_images.dim(0), batch = 250;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < count; begin += batch) {
    const int64_t end = std::min(count, begin + batch);
    const Tensor logits = session.run({{"input", rows(d.test_images, begin, end)}}).at("logits");
    for (int64_t i = 0; i < end - begin; ++i) {
      const float* l = logits.data<float>() + i * 10;
      correct += std::max_element(l, l + 10) - l == d.test_labels[size_t(begin + i)];
    }
  }
  return correct;
}

}  // namespace tessera::bench_data
