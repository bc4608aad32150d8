// Whole models against independent references: the PyTorch zoo (models/zoo, built by
// scripts/build_zoo.py) and the PaddleOCR models with ONNX Runtime outputs (models/ocr, built by
// scripts/build_ocr_reference.sh). Relative L2 error must be under 1e-4 for every output.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "primitives/primitives.h"
#include "tessera/npy.h"
#include "tessera/session.h"
#include "test_support.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

void check_model_folder(const std::string& folder, int threads, bool channels_last = false) {
  std::ifstream meta_file(folder + "/meta.json");
  ASSERT_TRUE(meta_file) << "missing " << folder
                         << "/meta.json: run the script that builds it (scripts/test.sh does)";
  nlohmann::json meta = nlohmann::json::parse(meta_file);
  Session session = Session::from_file(folder + "/" + meta["model"].get<std::string>(),
                                       SessionOptions{threads, true, channels_last});
  std::map<std::string, Tensor> inputs;
  for (const auto& in : meta["inputs"])
    inputs[in["name"].get<std::string>()] = read_npy(folder + "/" + in["file"].get<std::string>());
  auto outputs = session.run(inputs);
  for (const auto& out : meta["outputs"]) {
    std::string name = out["name"].get<std::string>();
    ASSERT_TRUE(outputs.count(name)) << "no output " << name;
    Tensor expected = read_npy(folder + "/" + out["file"].get<std::string>());
    double error = tessera::testing::relative_l2_error(outputs.at(name), expected);
    std::printf("%s output %s: relative L2 error %.3e (threads %d%s, peak activations %.2f MB)\n",
                folder.c_str(), name.c_str(), error, threads, channels_last ? ", channels-last" : "",
                session.plan_stats().peak_activation_bytes / 1e6);
    EXPECT_EQ(outputs.at(name).shape(), expected.shape());
    EXPECT_LT(error, 1e-4) << folder << " output " << name;
  }
}

std::string models_dir(const std::string& sub) { return tessera::testing::source_path("models/" + sub); }

}  // namespace

class ZooModel : public ::testing::TestWithParam<std::string> {};
TEST_P(ZooModel, MatchesPyTorch) { check_model_folder(models_dir("zoo/" + GetParam()), 2); }
INSTANTIATE_TEST_SUITE_P(PyTorch, ZooModel,
                         ::testing::Values("resnet18", "resnet50", "mobilenet_v2", "vgg11", "bert_tiny",
                                           "gpt2_tiny"));

class OcrModel : public ::testing::TestWithParam<std::string> {};
TEST_P(OcrModel, MatchesOnnxRuntime) { check_model_folder(models_dir("ocr/" + GetParam()), 2); }
INSTANTIATE_TEST_SUITE_P(PaddleOcr, OcrModel,
                         ::testing::Values("ppocr_cls_mobile_v2", "ppocr_det_v4", "ppocr_rec_v4"));

TEST(ZooModelThreads, SingleThreadGivesTheSameAnswer) { check_model_folder(models_dir("zoo/resnet18"), 1); }

// The CNNs on channels-last activations (SessionOptions::channels_last); MobileNetV2, whose
// depthwise layers have no channels-last kernel, is left in NCHW by the pass and must still match.
TEST(ZooModelChannelsLast, CnnsMatchPyTorch) {
  for (const char* model : {"resnet18", "resnet50", "vgg11", "mobilenet_v2"})
    check_model_folder(models_dir(std::string("zoo/") + model), 2, true);
  check_model_folder(models_dir("zoo/resnet18"), 1, true);
}

// Whole models on the lower kernel paths too: every ISA variant must give the reference answer.
TEST(ZooModelIsa, Avx2AndPortableKernelsMatchTheReferences) {
  primitives::Isa original = primitives::active_isa();
  for (primitives::Isa isa : {primitives::Isa::avx2, primitives::Isa::scalar}) {
    if (primitives::set_isa(isa) != isa) continue;  // CPU without AVX2: the scalar pass remains
    check_model_folder(models_dir("zoo/mobilenet_v2"), 2);
    check_model_folder(models_dir("zoo/bert_tiny"), 2);
    check_model_folder(models_dir("ocr/ppocr_rec_v4"), 2);
  }
  primitives::set_isa(original);
}
