// Roofline profiler and machine ceilings: per-node FLOPs/bytes/intensity against hand counts,
// roofline classification with injected ceilings, JSON fields, the CLI, and the HTML in Chromium.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "analysis/machine_ceilings.h"
#include "analysis/roofline_profiler.h"
#include "analysis/roofline_report.h"
#include "tessera/onnx.h"
#include "test_support.h"

using namespace tessera;
using namespace tessera::analysis;
namespace fs = std::filesystem;

namespace {

void add_float_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                           uint32_t seed) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  int64_t n = 1;
  for (int64_t d : dims) t->add_dims(d), n *= d;
  for (float v : tessera::testing::random_floats(size_t(n), seed)) t->add_float_data(v);
}

void set_float_value(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* type = v->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) type->mutable_shape()->add_dim()->set_dim_value(d);
}

// x[1,3,8,8] -> Conv(w[4,3,3,3], b[4], pads 1) -> Relu -> Flatten -> Gemm(w2[10,256]^T, c[10]) -> y[1,10]
onnx::ModelProto conv_gemm_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("conv_gemm");
  add_float_initializer(g, "w", {4, 3, 3, 3}, 1);
  add_float_initializer(g, "b", {4}, 2);
  add_float_initializer(g, "w2", {10, 256}, 3);
  add_float_initializer(g, "c", {10}, 4);
  set_float_value(g->add_input(), "x", {1, 3, 8, 8});
  set_float_value(g->add_output(), "y", {1, 10});
  auto* conv = g->add_node();
  conv->set_op_type("Conv");
  conv->set_name("conv");
  for (const char* in : {"x", "w", "b"}) conv->add_input(in);
  conv->add_output("conv_out");
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  auto* relu = g->add_node();
  relu->set_op_type("Relu");
  relu->set_name("relu");
  relu->add_input("conv_out");
  relu->add_output("relu_out");
  auto* flatten = g->add_node();
  flatten->set_op_type("Flatten");
  flatten->set_name("flatten");
  flatten->add_input("relu_out");
  flatten->add_output("flat");
  auto* gemm = g->add_node();
  gemm->set_op_type("Gemm");
  gemm->set_name("fc");
  for (const char* in : {"flat", "w2", "c"}) gemm->add_input(in);
  gemm->add_output("y");
  auto* trans_b = gemm->add_attribute();
  trans_b->set_name("transB");
  trans_b->set_type(onnx::AttributeProto::INT);
  trans_b->set_i(1);
  return m;
}

Graph conv_gemm_graph() {
  std::string bytes;
  conv_gemm_model().SerializeToString(&bytes);
  return parse_onnx_model(bytes.data(), bytes.size(), ".");
}

// Ceilings injected by hand: 100 GFLOP/s and 10 GB/s on one thread (balance 10 FLOP/byte),
// twice both on two threads. Nothing is timed against them.
MachineCeilings fake_ceilings() {
  MachineCeilings c;
  c.cpu_model = cpu_model_string();  // the cache key the CLI will look up
  c.isa = "fake";
  c.threads = ThreadPool::hardware_threads();
  c.peak_gflops_1 = 100;
  c.peak_gflops_all = 100 * c.threads;
  c.bandwidth_gbs_1 = 10;
  c.bandwidth_gbs_all = 10 * std::min(c.threads, 2);
  c.caches = {CacheLevel{1, "Data", 32768, 1}};
  c.measured_at = "2000-01-01T00:00:00Z";
  return c;
}

ModelProfile profile_conv_gemm(int iterations = 3) {
  Session session(conv_gemm_graph(), SessionOptions{1});
  session.prepare({{"x", {1, 3, 8, 8}}});
  std::map<std::string, Tensor> inputs{{"x", tessera::testing::random_tensor({1, 3, 8, 8}, 5)}};
  ProfileOptions options;
  options.warmup = 1;
  options.iterations = iterations;
  ModelProfile p = profile_session(session, inputs, options, fake_ceilings());
  p.model = "conv_gemm.onnx";
  return p;
}

const LayerProfile& layer_with_op(const ModelProfile& p, const std::string& op) {
  for (const auto& l : p.layers)
    if (l.op_type == op) return l;
  throw std::runtime_error("no layer with op " + op);
}

std::string temp_dir(const std::string& tag) {
  auto dir = fs::temp_directory_path() / ("tessera_profiler_test_" + tag + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir.string();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct CommandResult {
  int exit_code;
  std::string output;
};

CommandResult run_command(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

size_t count_occurrences(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
    ++count;
  return count;
}

}  // namespace

TEST(RooflineProfiler, ConvAndGemmFlopsBytesAndIntensityMatchHandCounts) {
  ModelProfile p = profile_conv_gemm();
  ASSERT_GE(p.layers.size(), 2u);
  EXPECT_EQ(p.iterations, 3);

  // Conv: every output element is a dot product of Cin*kh*kw = 27 multiply-adds.
  const double conv_flops = 2.0 * 1 * 4 * (8 * 8) * (3 * 3 * 3);
  const double conv_bytes = 4.0 * (1 * 3 * 8 * 8      // x
                                   + 4 * 3 * 3 * 3    // w
                                   + 4                // b
                                   + 1 * 4 * 8 * 8);  // output
  const LayerProfile& conv = layer_with_op(p, "Conv");
  EXPECT_DOUBLE_EQ(conv.flops, conv_flops);
  EXPECT_DOUBLE_EQ(conv.bytes, conv_bytes);
  EXPECT_DOUBLE_EQ(conv.intensity, conv_flops / conv_bytes);
  ASSERT_EQ(conv.input_shapes.size(), 3u);
  EXPECT_EQ(conv.input_shapes[1], (Shape{4, 3, 3, 3}));
  ASSERT_EQ(conv.output_shapes.size(), 1u);
  EXPECT_EQ(conv.output_shapes[0], (Shape{1, 4, 8, 8}));

  // Gemm [1,256] x [256,10]^T + c.
  const double gemm_flops = 2.0 * 1 * 10 * 256;
  const double gemm_bytes = 4.0 * (256 + 10 * 256 + 10 + 10);
  const LayerProfile& gemm = layer_with_op(p, "Gemm");
  EXPECT_DOUBLE_EQ(gemm.flops, gemm_flops);
  EXPECT_DOUBLE_EQ(gemm.bytes, gemm_bytes);
  EXPECT_DOUBLE_EQ(gemm.intensity, gemm_flops / gemm_bytes);
  EXPECT_EQ(gemm.output_shapes[0], (Shape{1, 10}));

  // The plan runs on 1 thread, so the 1-thread fake roofs apply: both layers sit left of the
  // balance point (10 FLOP/byte), on the memory roof.
  EXPECT_EQ(p.threads, 1);
  EXPECT_DOUBLE_EQ(p.roof.peak_gflops, 100);
  EXPECT_DOUBLE_EQ(p.roof.bandwidth_gbs, 10);
  EXPECT_FALSE(conv.compute_bound);
  EXPECT_FALSE(gemm.compute_bound);
  EXPECT_DOUBLE_EQ(conv.bound_gflops, conv.intensity * 10);
  EXPECT_DOUBLE_EQ(conv.bound_time_ms, conv_bytes / 10e9 * 1e3);
  for (const auto& l : p.layers) {
    EXPECT_GT(l.time_ms, 0) << l.name;
    EXPECT_NEAR(l.percent_of_bound, l.bound_time_ms / l.time_ms * 100, 1e-9) << l.name;
  }
  double flops = 0;
  for (const auto& l : p.layers) flops += l.flops;
  EXPECT_DOUBLE_EQ(p.total_flops, flops);
  EXPECT_GE(p.total_flops, conv_flops + gemm_flops);
  EXPECT_NEAR(p.utilization, p.achieved_gflops / 100, 1e-12);
}

TEST(RooflineProfiler, TensorReadTwiceCountsOnce) {
  Tensor x(DType::f32, {4, 4}), y(DType::f32, {4, 4});
  Node node;
  node.name = "square";
  node.op_type = "Mul";
  StepInfo step{7, &node, 16, {&x, &x}, {&y}};
  LayerProfile l = describe_step(step);
  EXPECT_EQ(l.index, 7);
  EXPECT_EQ(l.input_shapes.size(), 2u);
  EXPECT_DOUBLE_EQ(l.bytes, 2 * 16 * 4);
  EXPECT_DOUBLE_EQ(l.intensity, 16.0 / 128);
}

// An integer layer is held to the int8 peak: at 30 FLOP/byte it is memory-bound there (balance
// 40) though compute-bound against the f32 peak (balance 10).
TEST(RooflineProfiler, IntegerLayersUseTheInt8Peak) {
  const Roof roof{100, 10, 400};
  LayerProfile layer;
  layer.flops = 1e9;
  layer.bytes = 1e9 / 30;
  layer.intensity = 30;
  layer.int8 = true;
  apply_roofline(layer, 5.0, roof);  // 200 GOP/s of a 300 GOP/s bound
  EXPECT_FALSE(layer.compute_bound);
  EXPECT_DOUBLE_EQ(layer.bound_gflops, 300);
  EXPECT_NEAR(layer.percent_of_bound, 200.0 / 3, 1e-9);
  layer.int8 = false;
  apply_roofline(layer, 5.0, roof);
  EXPECT_TRUE(layer.compute_bound);
  EXPECT_DOUBLE_EQ(layer.bound_gflops, 100);
}

TEST(RooflineProfiler, ClassifiesAgainstInjectedCeilings) {
  const Roof roof{100, 10};  // balance 10 FLOP/byte
  EXPECT_DOUBLE_EQ(roof.balance(), 10);

  LayerProfile dense;  // 50 FLOP/byte: right of the balance point
  dense.flops = 1e9;
  dense.bytes = 2e7;
  dense.intensity = 50;
  apply_roofline(dense, 20.0, roof);  // 1 GFLOP in 20 ms = 50 GFLOP/s
  EXPECT_TRUE(dense.compute_bound);
  EXPECT_DOUBLE_EQ(dense.bound_gflops, 100);
  EXPECT_NEAR(dense.achieved_gflops, 50, 1e-9);
  EXPECT_NEAR(dense.achieved_gbs, 1, 1e-9);
  EXPECT_NEAR(dense.percent_of_bound, 50, 1e-9);

  LayerProfile sparse;  // 2 FLOP/byte: on the memory roof, bound 20 GFLOP/s
  sparse.flops = 2e8;
  sparse.bytes = 1e8;
  sparse.intensity = 2;
  apply_roofline(sparse, 20.0, roof);  // 0.2 GFLOP in 20 ms = 10 GFLOP/s
  EXPECT_FALSE(sparse.compute_bound);
  EXPECT_DOUBLE_EQ(sparse.bound_gflops, 20);
  EXPECT_NEAR(sparse.percent_of_bound, 50, 1e-9);

  LayerProfile copy;  // no FLOPs: judged by traffic alone
  copy.bytes = 1e8;
  apply_roofline(copy, 40.0, roof);  // 0.1 GB in 40 ms = 2.5 GB/s of 10
  EXPECT_FALSE(copy.compute_bound);
  EXPECT_NEAR(copy.percent_of_bound, 25, 1e-9);

  LayerProfile at_balance;
  at_balance.flops = 1e9;
  at_balance.bytes = 1e8;
  at_balance.intensity = 10;
  apply_roofline(at_balance, 10.0, roof);
  EXPECT_TRUE(at_balance.compute_bound);
  EXPECT_NEAR(at_balance.percent_of_bound, 100, 1e-9);

  ModelProfile model = summarize_layers({dense, sparse, copy}, 100.0, roof);
  EXPECT_DOUBLE_EQ(model.total_flops, 1.2e9);
  EXPECT_NEAR(model.achieved_gflops, 12, 1e-9);
  EXPECT_NEAR(model.utilization, 0.12, 1e-12);
  EXPECT_NEAR(model.median_percent_of_bound, 50, 1e-9);             // dense and sparse
  EXPECT_NEAR(model.median_percent_of_bound_all_layers, 50, 1e-9);  // 25, 50, 50
  EXPECT_NEAR(model.time_weighted_percent_of_bound, (10 + 10 + 10) / 80.0 * 100, 1e-9);
  EXPECT_EQ(model.compute_bound_layers, 1);
  EXPECT_EQ(model.memory_bound_layers, 2);
}

TEST(RooflineProfiler, RoofForThreadsUsesMeasuredFiguresAndCapsInBetween) {
  MachineCeilings c;
  c.threads = 4;
  c.peak_gflops_1 = 100, c.peak_gflops_all = 380;
  c.bandwidth_gbs_1 = 10, c.bandwidth_gbs_all = 25;
  EXPECT_DOUBLE_EQ(roof_for_threads(c, 1).peak_gflops, 100);
  EXPECT_DOUBLE_EQ(roof_for_threads(c, 1).bandwidth_gbs, 10);
  EXPECT_DOUBLE_EQ(roof_for_threads(c, 4).peak_gflops, 380);
  EXPECT_DOUBLE_EQ(roof_for_threads(c, 8).bandwidth_gbs, 25);
  EXPECT_DOUBLE_EQ(roof_for_threads(c, 2).peak_gflops, 200);
  EXPECT_DOUBLE_EQ(roof_for_threads(c, 3).bandwidth_gbs, 25);  // 30 capped by the all-thread figure
}

TEST(RooflineProfiler, JsonHasTheDocumentedFields) {
  ModelProfile p = profile_conv_gemm();
  nlohmann::json j = nlohmann::json::parse(profile_to_json(p));
  EXPECT_EQ(j.at("format"), "tessera-profile-1");
  for (const char* key : {"model", "threads", "iterations", "roof", "machine", "summary", "layers"})
    EXPECT_TRUE(j.contains(key)) << key;
  for (const char* key : {"peak_gflops", "bandwidth_gbs", "balance_flop_per_byte"})
    EXPECT_TRUE(j["roof"].contains(key)) << key;
  for (const char* key :
       {"latency_ms", "layer_time_ms", "total_flops", "total_bytes", "achieved_gflops", "utilization",
        "median_percent_of_bound", "median_percent_of_bound_all_layers", "time_weighted_percent_of_bound",
        "layer_count", "compute_bound_layers", "memory_bound_layers"})
    EXPECT_TRUE(j["summary"].contains(key)) << key;
  for (const char* key :
       {"cpu_model", "isa", "threads", "peak_gflops_1", "peak_gflops_all", "has_vnni", "int8_gops_1",
        "int8_gops_all", "bandwidth_gbs_1", "bandwidth_gbs_all", "balance_flop_per_byte_1",
        "balance_flop_per_byte_all", "triad_bytes", "caches", "measured_at"})
    EXPECT_TRUE(j["machine"].contains(key)) << key;
  ASSERT_EQ(j["layers"].size(), p.layers.size());
  EXPECT_EQ(j["summary"]["layer_count"], p.layers.size());
  for (const auto& layer : j["layers"]) {
    for (const char* key :
         {"index", "name", "op", "input_shapes", "output_shapes", "flops", "bytes", "intensity", "time_ms",
          "achieved_gflops", "achieved_gbs", "bound_gflops", "bound_time_ms", "percent_of_bound", "bound"})
      EXPECT_TRUE(layer.contains(key)) << key;
    EXPECT_TRUE(layer["bound"] == "compute" || layer["bound"] == "memory");
  }
  const auto& conv =
      *std::find_if(j["layers"].begin(), j["layers"].end(), [](auto& l) { return l["op"] == "Conv"; });
  EXPECT_EQ(conv["output_shapes"][0], (std::vector<int64_t>{1, 4, 8, 8}));
  EXPECT_DOUBLE_EQ(conv["flops"].get<double>(), 13824);
}

TEST(MachineCeilings, MeasuredValuesArePositiveAndSane) {
  MeasureOptions options;
  options.seconds_per_trial = 0.02;  // sanity only; `tessera machine` measures longer
  options.trials = 2;
  options.triad_bytes = size_t(48) << 20;
  MachineCeilings c = measure_machine_ceilings(options);
  EXPECT_FALSE(c.cpu_model.empty());
  EXPECT_TRUE(c.isa == "avx512" || c.isa == "avx2" || c.isa == "scalar") << c.isa;
  EXPECT_EQ(c.threads, ThreadPool::hardware_threads());
  EXPECT_GT(c.peak_gflops_1, 0);
  EXPECT_GT(c.peak_gflops_all, 0);
  EXPECT_GT(c.bandwidth_gbs_1, 0);
  EXPECT_GT(c.bandwidth_gbs_all, 0);
  EXPECT_TRUE(std::isfinite(c.peak_gflops_1) && std::isfinite(c.bandwidth_gbs_1));
  // Register-only FMA throughput exceeds the bytes per second of a streaming loop on any CPU.
  EXPECT_GT(c.peak_gflops_1, 0.1 * c.bandwidth_gbs_1);
  if (c.has_vnni) {
    EXPECT_GT(c.int8_gops_1, 0);
    EXPECT_GT(c.int8_gops_all, 0);
  } else {
    EXPECT_EQ(c.int8_gops_1, 0);
  }
  EXPECT_EQ(c.triad_bytes, size_t(48) << 20);
  ASSERT_FALSE(c.caches.empty());
  for (const auto& level : c.caches) {
    EXPECT_GE(level.level, 1);
    EXPECT_GT(level.bytes, 0u);
  }
  EXPECT_GT(roof_for_threads(c, 1).balance(), 0);
}

TEST(MachineCeilings, CacheRoundTripsKeyedByCpuModel) {
  std::string dir = temp_dir("cache");
  std::string path = dir + "/sub/machine.json";
  MachineCeilings c = fake_ceilings();
  store_cached_ceilings(path, c);
  auto loaded = load_cached_ceilings(path, c.threads);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->cpu_model, c.cpu_model);
  EXPECT_DOUBLE_EQ(loaded->peak_gflops_1, 100);
  EXPECT_DOUBLE_EQ(loaded->bandwidth_gbs_all, c.bandwidth_gbs_all);
  ASSERT_EQ(loaded->caches.size(), 1u);
  EXPECT_EQ(loaded->caches[0].bytes, 32768u);
  EXPECT_FALSE(load_cached_ceilings(path, c.threads + 1).has_value());  // other thread count: re-measure

  // Another CPU's entry in the same file survives.
  nlohmann::json file = nlohmann::json::parse(read_file(path));
  file["machines"]["Some Other CPU"] = file["machines"][c.cpu_model];
  file["machines"]["Some Other CPU"]["cpu_model"] = "Some Other CPU";
  std::ofstream(path) << file.dump();
  store_cached_ceilings(path, c);
  EXPECT_TRUE(nlohmann::json::parse(read_file(path))["machines"].contains("Some Other CPU"));
  EXPECT_THROW(ceilings_from_json("{\"cpu_model\": 3}"), Error);
  fs::remove_all(dir);
}

TEST(ProfileCli, WritesTableJsonAndHtmlUsingTheCachedCeilings) {
  std::string dir = temp_dir("cli");
  {
    std::ofstream out(dir + "/model.onnx", std::ios::binary);
    conv_gemm_model().SerializeToOstream(&out);
  }
  // A pre-filled cache keeps the CLI from measuring (fast, and no timing in tests).
  store_cached_ceilings(dir + "/machine.json", fake_ceilings());
  std::string tessera = std::string(TESSERA_BINARY_DIR) + "/tessera";
  CommandResult r = run_command("TESSERA_MACHINE_CACHE=" + dir + "/machine.json " + tessera + " profile " +
                                dir + "/model.onnx --threads 1 --iters 3 --warmup 1 --json " + dir +
                                "/p.json --html " + dir + "/p.html 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Conv"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("utilization"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("measuring machine ceilings"), std::string::npos) << r.output;
  nlohmann::json j = nlohmann::json::parse(read_file(dir + "/p.json"));
  EXPECT_DOUBLE_EQ(j["roof"]["peak_gflops"].get<double>(), 100);
  EXPECT_EQ(j["machine"]["isa"], "fake");
  EXPECT_TRUE(fs::exists(dir + "/p.html"));

  CommandResult m =
      run_command(tessera + " machine --cache " + dir + "/machine.json --json " + dir + "/m.json 2>&1");
  ASSERT_EQ(m.exit_code, 0) << m.output;
  EXPECT_NE(m.output.find("balance"), std::string::npos) << m.output;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(read_file(dir + "/m.json"))["peak_gflops_1"].get<double>(), 100);

  CommandResult bad = run_command(tessera + " profile " + dir + "/missing.onnx 2>&1");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.output.rfind("error: ", 0), 0u) << bad.output;
  fs::remove_all(dir);
}

TEST(ProfileHtml, IsSelfContainedWithOnePointPerLayer) {
  ModelProfile p = profile_conv_gemm();
  std::string html = profile_to_html(p);
  EXPECT_EQ(count_occurrences(html, "<circle class=\"layer-point"), p.layers.size());
  EXPECT_EQ(count_occurrences(html, "<rect class=\"layer-bar"), p.layers.size());
  EXPECT_EQ(count_occurrences(html, "class=\"roof "), 2u);
  // Nothing loaded from elsewhere: no src/href attributes, no links, no imports.
  for (const char* needle : {"src=", "href=", "<link", "@import", "url("})
    EXPECT_EQ(html.find(needle), std::string::npos) << needle;
  std::string stripped = std::regex_replace(html, std::regex("xmlns=\"http://www.w3.org/2000/svg\""), "");
  EXPECT_EQ(stripped.find("http://"), std::string::npos);
  EXPECT_EQ(stripped.find("https://"), std::string::npos);
}

TEST(ProfileHtml, ChromiumDrawsOnePointPerLayer) {
  if (run_command("command -v chromium >/dev/null 2>&1").exit_code != 0)
    GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs it)";
  ModelProfile p = profile_conv_gemm();
  ASSERT_GE(p.layers.size(), 2u);  // so a count that matched by accident (0 = 0) cannot pass
  std::string dir = temp_dir("html");
  const std::string report = dir + "/report.html";
  write_text_file(report, profile_to_html(p));
  fs::create_directories(dir + "/profile");
  const std::string command =
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage "
      "--virtual-time-budget=2000 --user-data-dir=" +
      dir + "/profile --dump-dom file://" + report + " 2>/dev/null";
  CommandResult r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output.substr(0, 2000);
  // The inline script counted the points that got a layout box.
  const std::string expected = "data-rendered-points=\"" + std::to_string(p.layers.size()) + "\"";
  EXPECT_NE(r.output.find(expected), std::string::npos) << "expected " << expected << " in:\n"
                                                        << r.output.substr(0, 2000);
  EXPECT_EQ(count_occurrences(r.output, "<circle class=\"layer-point"), p.layers.size());
  EXPECT_NE(r.output.find("layers drawn"), std::string::npos);
  fs::remove_all(dir);
}
