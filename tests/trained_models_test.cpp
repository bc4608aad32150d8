// The trained Fashion-MNIST models (models/trained, built by scripts/train_fashion_mnist.py) on
// 1000 held-out test images: logits match PyTorch's and Tessera's accuracy equals PyTorch's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tessera/npy.h"
#include "tessera/session.h"
#include "test_support.h"

using namespace tessera;

namespace {

std::string trained_path(const std::string& file) {
  return tessera::testing::source_path("models/trained/" + file);
}

// Rows [begin, end) of a contiguous tensor, copied (the first dimension is the batch).
Tensor rows(const Tensor& tensor, int64_t begin, int64_t end) {
  Shape shape = tensor.shape();
  const size_t row_bytes = tensor.nbytes() / size_t(shape[0]);
  shape[0] = end - begin;
  Tensor out(tensor.dtype(), shape);
  std::memcpy(out.raw_data(), static_cast<const char*>(tensor.raw_data()) + size_t(begin) * row_bytes,
              out.nbytes());
  return out;
}

int64_t top1(const float* logits, int64_t classes) {
  return std::max_element(logits, logits + classes) - logits;
}

}  // namespace

class TrainedModel : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainedModel, MatchesPyTorchOnHeldOutImages) {
  std::ifstream meta_file(trained_path("meta.json"));
  ASSERT_TRUE(meta_file)
      << "missing models/trained/meta.json: /usr/bin/python3 scripts/train_fashion_mnist.py";
  const nlohmann::json meta = nlohmann::json::parse(meta_file);
  ASSERT_TRUE(meta["models"].contains(GetParam()))
      << "no model " << GetParam() << " in models/trained/meta.json";
  const nlohmann::json& entry = meta["models"][GetParam()];

  const Tensor images = read_npy(trained_path(meta["dataset"]["images"].get<std::string>()));
  const Tensor labels = read_npy(trained_path(meta["dataset"]["labels"].get<std::string>()));
  const Tensor reference = read_npy(trained_path(entry["logits"].get<std::string>()));
  const int64_t count = images.dim(0), classes = reference.dim(1);
  ASSERT_EQ(images.shape(), (Shape{count, 1, 28, 28}));
  ASSERT_EQ(labels.dtype(), DType::i64);
  ASSERT_EQ(labels.shape(), (Shape{count}));
  ASSERT_EQ(reference.shape(), (Shape{count, 10}));

  Session session = Session::from_file(trained_path(entry["model"].get<std::string>()), SessionOptions{2});
  // Batches of 128: the last one (1000 = 7 * 128 + 104) is smaller, so the plan is rebuilt for a
  // second batch size on the way.
  const int64_t batch = 128;
  int64_t tessera_correct = 0, pytorch_correct = 0, same_top1 = 0;
  double worst_error = 0;
  for (int64_t begin = 0; begin < count; begin += batch) {
    const int64_t end = std::min(count, begin + batch);
    auto outputs = session.run({{"input", rows(images, begin, end)}});
    ASSERT_TRUE(outputs.count("logits")) << "no output logits";
    const Tensor& logits = outputs.at("logits");
    const Tensor expected = rows(reference, begin, end);
    ASSERT_EQ(logits.shape(), expected.shape());
    const double error = tessera::testing::relative_l2_error(logits, expected);
    worst_error = std::max(worst_error, error);
    EXPECT_LT(error, 1e-4) << GetParam() << " images " << begin << " to " << end;
    for (int64_t i = 0; i < end - begin; ++i) {
      const int64_t label = labels.data<int64_t>()[begin + i];
      const int64_t ours = top1(logits.data<float>() + i * classes, classes);
      const int64_t theirs = top1(expected.data<float>() + i * classes, classes);
      tessera_correct += ours == label;
      pytorch_correct += theirs == label;
      same_top1 += ours == theirs;
    }
  }
  const double tessera_accuracy = double(tessera_correct) / double(count);
  const double pytorch_accuracy = double(pytorch_correct) / double(count);
  std::printf(
      "%s: accuracy on %lld held-out Fashion-MNIST images %.4f (Tessera), %.4f (PyTorch); same top-1 on "
      "%lld; worst batch relative L2 error %.3e; full 10k test accuracy (PyTorch) %.4f\n",
      GetParam().c_str(), (long long)count, tessera_accuracy, pytorch_accuracy, (long long)same_top1,
      worst_error, entry["test_accuracy"].get<double>());
  EXPECT_EQ(tessera_correct, pytorch_correct);
  // No subset image is near a tie (meta.json: min_top2_logit_gap, at least 7e-3 in logits of
  // magnitude about 10), far above the error allowed, so every top-1 answer must agree too.
  EXPECT_EQ(same_top1, count);
  EXPECT_NEAR(pytorch_accuracy, entry["subset_accuracy"].get<double>(), 1e-9);
}

INSTANTIATE_TEST_SUITE_P(FashionMnist, TrainedModel, ::testing::Values("lenet5", "resnet14"));
