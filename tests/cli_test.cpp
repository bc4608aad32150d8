// The CLI end to end: good runs write correct .npy outputs; every kind of bad input gives one
// clear error line and exit code 1, never a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "tessera/npy.h"
#include "test_support.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

CommandResult run_cli(const std::string& args) {
  std::string command = std::string(TESSERA_BINARY_DIR) + "/tessera " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("tessera_cli_test_" + std::to_string(::getpid()))).string();
    fs::create_directories(dir_);
    model_ = dir_ + "/model.onnx";
    std::ofstream out(model_, std::ios::binary);
    tessera::testing::small_onnx_model().SerializeToOstream(&out);
    out.close();
    input_ = tessera::testing::random_tensor({2, 4}, 11);
    write_npy(dir_ + "/x.npy", input_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Expects failure: exit code 1, one line starting "error:", containing `needle`.
  void expect_one_line_error(const std::string& args, const std::string& needle) {
    CommandResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.output;
  }

  std::string dir_, model_;
  Tensor input_;
};

}  // namespace

TEST_F(CliTest, RunWritesCorrectOutputs) {
  CommandResult r = run_cli("run " + model_ + " -i x=" + dir_ + "/x.npy -o " + dir_ + "/out --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Tensor y = read_npy(dir_ + "/out/y.npy");
  ASSERT_EQ(y.shape(), (Shape{2, 4}));
  for (int64_t i = 0; i < y.numel(); ++i)
    EXPECT_FLOAT_EQ(y.data<float>()[i], std::max(0.f, input_.data<float>()[i] + float(i % 4) - 1.5f));
}

TEST_F(CliTest, InfoPrintsInterfaceOpsParametersAndFlops) {
  CommandResult r = run_cli("info " + model_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* needle : {"inputs:", "x  float32 [batch,4]", "outputs:", "Add", "Relu", "parameters: 4", "FLOPs"})
    EXPECT_NE(r.output.find(needle), std::string::npos) << needle << " missing in\n" << r.output;
}

TEST_F(CliTest, BenchPrintsMedianAndP90AndWritesTrace) {
  CommandResult r = run_cli("bench " + model_ + " --iters 5 --warmup 1 --threads 1 --trace " + dir_ + "/trace.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(median [0-9.]+ ms  p90 [0-9.]+ ms)"))) << r.output;
  std::ifstream trace(dir_ + "/trace.json");
  std::string text((std::istreambuf_iterator<char>(trace)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"traceEvents\""), std::string::npos);
  EXPECT_NE(text.find("\"ph\":\"X\""), std::string::npos);
}

TEST_F(CliTest, HelpOnEverySubcommand) {
  for (const char* sub : {"run", "info", "bench", "compress"}) {
    CommandResult r = run_cli(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << r.output;
  }
}

TEST_F(CliTest, MissingInput) {
  expect_one_line_error("run " + model_ + " -o " + dir_ + "/out", "missing input 'x'");
}

TEST_F(CliTest, ModelPathDoesNotExist) {
  expect_one_line_error("run " + dir_ + "/nope.onnx -i x=" + dir_ + "/x.npy -o " + dir_ + "/out", "not found");
}

TEST_F(CliTest, TruncatedModel) {
  std::string bytes = tessera::testing::small_onnx_model().SerializeAsString();
  std::ofstream(dir_ + "/cut.onnx", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
  expect_one_line_error("run " + dir_ + "/cut.onnx -i x=" + dir_ + "/x.npy -o " + dir_ + "/out", "cut.onnx");
}

TEST_F(CliTest, MalformedNpy) {
  std::ofstream(dir_ + "/bad.npy") << "\x93NUMPY garbage";
  expect_one_line_error("run " + model_ + " -i x=" + dir_ + "/bad.npy -o " + dir_ + "/out", "input 'x'");
}

TEST_F(CliTest, WrongDtype) {
  write_npy(dir_ + "/i.npy", Tensor(DType::i64, {2, 4}));
  expect_one_line_error("run " + model_ + " -i x=" + dir_ + "/i.npy -o " + dir_ + "/out", "float32");
}

TEST_F(CliTest, WrongShape) {
  write_npy(dir_ + "/s.npy", tessera::testing::random_tensor({2, 5}, 1));
  expect_one_line_error("run " + model_ + " -i x=" + dir_ + "/s.npy -o " + dir_ + "/out", "shape [2,5]");
}

TEST_F(CliTest, UnknownOp) {
  onnx::ModelProto m = tessera::testing::small_onnx_model();
  m.mutable_graph()->mutable_node(0)->set_op_type("NoSuchOp");
  std::ofstream out(dir_ + "/unknown.onnx", std::ios::binary);
  m.SerializeToOstream(&out);
  out.close();
  expect_one_line_error("run " + dir_ + "/unknown.onnx -i x=" + dir_ + "/x.npy -o " + dir_ + "/out",
                        "unsupported operator 'NoSuchOp' (domain ai.onnx, opset 13) at node 'add0'");
}

TEST_F(CliTest, DeclaredSizeMismatch) {
  onnx::ModelProto m = tessera::testing::small_onnx_model();
  m.mutable_graph()->mutable_initializer(0)->set_dims(0, 5);
  std::ofstream out(dir_ + "/size.onnx", std::ios::binary);
  m.SerializeToOstream(&out);
  out.close();
  expect_one_line_error("run " + dir_ + "/size.onnx -i x=" + dir_ + "/x.npy -o " + dir_ + "/out", "declares shape [5]");
}

TEST_F(CliTest, UnknownAbftPolicyOrAction) {
  expect_one_line_error("bench " + model_ + " --abft sometimes", "--abft");
  expect_one_line_error("run " + model_ + " -i x=" + dir_ + "/x.npy -o " + dir_ + "/out --abft-action ignore",
                        "--abft-action");
  expect_one_line_error("bench " + model_ + " --abft tuned", "--abft-tuned");
}

// ABFT through the CLI on a zoo model (scripts/build_zoo.py builds it): runs report their checks
// and no detection; `tessera abft` writes its JSON report.
TEST_F(CliTest, AbftOnAZooModel) {
  const std::string model = tessera::testing::source_path("models/zoo/resnet18/model.onnx");
  if (!fs::exists(model)) GTEST_SKIP() << model << " missing: scripts/build_zoo.py builds it";
  CommandResult r = run_cli("bench " + model + " --iters 1 --warmup 0 --threads 1 --abft global --abft-action fail");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("abft global: [1-9][0-9]* row checks, 0 detections"))) << r.output;
  const std::string json = dir_ + "/abft.json", tuned = dir_ + "/tuned.json";
  r = run_cli("abft " + model + " --threads 1 --iters 1 --rounds 1 --warmup 0 --json " + json + " --save-tuned " + tuned);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(json);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* field : {"\"latency_ms\"", "\"overhead_percent\"", "\"auto_reduction_vs_global\"",
                            "\"auto_scheme\"", "\"tuned_scheme\"", "\"detections\": 0"})
    EXPECT_NE(text.find(field), std::string::npos) << field << " missing in " << text.substr(0, 400);
  r = run_cli("bench " + model + " --iters 1 --warmup 0 --threads 1 --abft tuned --abft-tuned " + tuned);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("abft tuned:"), std::string::npos) << r.output;
}

// A fault-injection campaign through the CLI: the reports agree with each other, a seed gives
// the same campaign on 1 and 2 threads, and bad requests are one-line errors.
TEST_F(CliTest, InjectWritesConsistentReportsAndIsReproducible) {
  const std::string json1 = dir_ + "/c1.json", json2 = dir_ + "/c2.json", csv = dir_ + "/c.csv", html = dir_ + "/c.html";
  const std::string base = "inject " + model_ + " --data " + dir_ + "/x.npy --n 60 --no-progress ";
  CommandResult r = run_cli(base + "--seed 5 --threads 1 --json " + json1 + " --csv " + csv + " --html " + html);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("60 injections of 60 planned"), std::string::npos) << r.output;
  r = run_cli(base + "--seed 5 --threads 2 --json " + json2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const nlohmann::json a = nlohmann::json::parse(read(json1)), b = nlohmann::json::parse(read(json2));
  EXPECT_EQ(a["records"], b["records"]);
  EXPECT_EQ(a["samples"], 2);
  ASSERT_EQ(a["records"].size(), 60u);
  int64_t total = 0;
  for (const char* o : {"masked", "tolerable_sdc", "critical_sdc", "detected", "non_finite"})
    total += a["outcomes"][o]["count"].get<int64_t>();
  EXPECT_EQ(total, 60);
  int64_t per_layer = 0;
  for (const auto& layer : a["per_layer"]) per_layer += layer["injections"].get<int64_t>();
  EXPECT_EQ(per_layer, 60);
  const std::string csv_text = read(csv);
  EXPECT_EQ(std::count(csv_text.begin(), csv_text.end(), '\n'), 61);
  const std::string html_text = read(html);
  EXPECT_NE(html_text.find("<rect class=\"bar\""), std::string::npos);
  // Another seed: another campaign.
  r = run_cli(base + "--threads 1 --seed 6 --json " + json2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(a["records"], nlohmann::json::parse(read(json2))["records"]);
  // Spatial patterns on activations.
  r = run_cli("inject " + model_ + " --data " + dir_ + "/x.npy --n 20 --pattern any --no-progress --json " + json2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json spatial = nlohmann::json::parse(read(json2));
  for (const auto& rec : spatial["records"]) EXPECT_FALSE(rec["pattern"].get<std::string>().empty());
}

// The same campaign split over 2 MPI ranks (Debian Open MPI, set up by scripts/setup.sh) merges
// to the single-process result.
TEST_F(CliTest, InjectUnderMpirunMatchesOneProcess) {
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed (openmpi-bin)";
  const std::string model = tessera::testing::source_path("models/zoo/resnet18/model.onnx");
  const std::string target = fs::exists(model) ? model : model_;
  const std::string one = dir_ + "/one.json", two = dir_ + "/two.json";
  const std::string args = " inject " + target + " --n 30 --seed 11 --threads 1 --no-progress --json ";
  CommandResult r = run_cli(args.substr(1) + one);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Root may run mpirun only when told so; the sanitizer build's leak check would flag Open MPI's
  // own allocations.
  const std::string mpirun =
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 --oversubscribe -x ASAN_OPTIONS=detect_leaks=0 " +
      std::string(TESSERA_BINARY_DIR) + "/tessera" + args + two + " 2>&1";
  FILE* pipe = popen(mpirun.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  ASSERT_EQ(pclose(pipe), 0) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), std::count(r.output.begin(), r.output.end(), '\n'))
      << "only rank 0 reports:\n" << output;
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  };
  const nlohmann::json a = read(one), b = read(two);
  EXPECT_EQ(a["records"], b["records"]);
  EXPECT_EQ(a["outcomes"], b["outcomes"]);
  EXPECT_EQ(a["per_layer"], b["per_layer"]);
  EXPECT_EQ(b["threads"], 2);
}

TEST_F(CliTest, InjectBadRequests) {
  const std::string base = "inject " + model_ + " --data " + dir_ + "/x.npy --n 5 ";
  expect_one_line_error(base + "--fault flip", "unknown fault model 'flip'");
  expect_one_line_error(base + "--site cache", "unknown fault site 'cache'");
  expect_one_line_error(base + "--site activation:layer=nope", "no site matches");
  expect_one_line_error(base + "--pattern teapot", "no spatial pattern named 'teapot'");
  expect_one_line_error(base + "--pattern any --site weight", "use --site activation");
  expect_one_line_error(base + "--metric top5", "unknown metric 'top5'");
  expect_one_line_error(base + "--error-models " + dir_ + "/none.json --pattern any", "cannot open error-model file");
  write_npy(dir_ + "/flat.npy", tessera::testing::random_tensor({8}, 3));
  expect_one_line_error("inject " + model_ + " --data " + dir_ + "/flat.npy --n 5", "has rank 2");
}

TEST_F(CliTest, BadArgumentSyntax) {
  CommandResult r = run_cli("run " + model_ + " -i x -o " + dir_ + "/out");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("NAME=FILE.npy"), std::string::npos) << r.output;
}

// `tessera compress` on the trained LeNet-5: every method writes a model that `tessera run` reads
// back and that still classifies the held-out images: int8, w8a8 and 4-bit BCQ within 2 points of
// f32 on these 200 images; pruning half the weights without fine-tuning costs more (several
// points on LeNet-5; docs/COMPRESSION_SPARSITY.md), so there only far above chance.
TEST_F(CliTest, CompressWritesModelsThatRunAndClassify) {
  const std::string lenet = tessera::testing::source_path("models/trained/lenet5.onnx");
  const Tensor images = read_npy(tessera::testing::source_path("models/trained/test_images.npy"));
  const Tensor labels = read_npy(tessera::testing::source_path("models/trained/test_labels.npy"));
  auto slice = [&](int64_t begin, int64_t end) {
    Shape shape = images.shape();
    shape[0] = end - begin;
    Tensor out(DType::f32, shape);
    const size_t row = images.nbytes() / size_t(images.dim(0));
    std::memcpy(out.raw_data(), static_cast<const char*>(images.raw_data()) + size_t(begin) * row,
                size_t(end - begin) * row);
    return out;
  };
  write_npy(dir_ + "/calib.npy", slice(0, 100));
  write_npy(dir_ + "/eval.npy", slice(100, 300));
  auto accuracy = [&](const std::string& model) {
    CommandResult r = run_cli("run " + model + " -i input=" + dir_ + "/eval.npy -o " + dir_ + "/eval_out");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const Tensor logits = read_npy(dir_ + "/eval_out/logits.npy");
    int correct = 0;
    for (int64_t i = 0; i < logits.dim(0); ++i) {
      const float* row = logits.data<float>() + i * 10;
      correct += (std::max_element(row, row + 10) - row) == int64_t(labels.value_as_double(100 + i));
    }
    return 100.0 * correct / double(logits.dim(0));
  };
  const double f32 = accuracy(lenet);
  const std::pair<std::string, double> methods[] = {{"int8 --calibration entropy", 2.0},
                                                    {"bitplane --weight-bits 8 --activation-bits 8", 2.0},
                                                    {"bcq --weight-bits 4 --group-size 32", 2.0},
                                                    {"sparse --sparsity 0.5", 40.0}};
  for (const auto& [method, allowed_drop] : methods) {
    const std::string out = dir_ + "/compressed.onnx";
    CommandResult r = run_cli("compress " + lenet + " --method " + method + " --calib " + dir_ + "/calib.npy -o " + out);
    ASSERT_EQ(r.exit_code, 0) << method << "\n" << r.output;
    EXPECT_GT(accuracy(out), f32 - allowed_drop) << method;
  }
  const std::string base = "compress " + lenet + " -o " + dir_ + "/x.onnx ";
  expect_one_line_error(base + "--method int8", "needs --calib");
  expect_one_line_error(base + "--method sparse --pattern 4:2", "--pattern must be N:M");
  expect_one_line_error(base + "--method int8 --calib " + dir_ + "/calib.npy --keep-float nope", "no quantizable layer");
  expect_one_line_error(base + "--method int8 --calib " + dir_ + "/calib.npy --calibration median",
                        "unknown calibration method");
  expect_one_line_error("compress " + dir_ + "/missing.onnx --method bcq -o " + dir_ + "/x.onnx", "missing.onnx");
}
