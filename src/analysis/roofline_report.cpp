// Text, JSON and HTML renderings of a ModelProfile. The HTML is one file that opens offline: all
// styling, charts (inline SVG, log-log roofline) and the point-counting script are inline.
#include "analysis/roofline_report.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "tessera/error.h"

namespace tessera::analysis {

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

std::string shapes_text(const std::vector<Shape>& shapes) {
  std::string text;
  for (const auto& s : shapes) text += (text.empty() ? "" : " ") + shape_to_string(s);
  return text;
}

std::string truncate(const std::string& s, size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 1) + "~";
}


// Tick label for a power of ten: 0.01, 0.1, 1, 10, 1k, 10k...
std::string decade_label(int exponent) {
  if (exponent < 0) return fmt::format("{:.{}f}", std::pow(10.0, exponent), -exponent);
  if (exponent < 3) return fmt::format("{:.0f}", std::pow(10.0, exponent));
  if (exponent < 6) return fmt::format("{:.0f}k", std::pow(10.0, exponent - 3));
  return fmt::format("{:.0f}M", std::pow(10.0, exponent - 6));
}

const char* bound_name(const LayerProfile& layer) {
  if (layer.flops <= 0) return "memory";
  return layer.compute_bound ? "compute" : "memory";
}

// A log10 axis over whole decades covering [low, high].
struct LogAxis {
  int first_decade = -2, last_decade = 3;
  double pixel_start = 0, pixel_length = 1;
  bool flipped = false;  // y grows downwards on screen
  static LogAxis covering(double low, double high, double pixel_start, double pixel_length, bool flipped) {
    LogAxis axis;
    if (low > 0 && high > 0) {
      axis.first_decade = int(std::floor(std::log10(low)));
      axis.last_decade = int(std::ceil(std::log10(high)));
      if (axis.last_decade <= axis.first_decade) axis.last_decade = axis.first_decade + 1;
    }
    axis.pixel_start = pixel_start;
    axis.pixel_length = pixel_length;
    axis.flipped = flipped;
    return axis;
  }
  double min() const { return std::pow(10.0, first_decade); }
  double max() const { return std::pow(10.0, last_decade); }
  double pixel(double value) const {
    value = std::clamp(value, min(), max());
    double f = (std::log10(value) - first_decade) / double(last_decade - first_decade);
    return flipped ? pixel_start + pixel_length * (1 - f) : pixel_start + pixel_length * f;
  }
};

std::string layer_tooltip(const LayerProfile& l) {
  return fmt::format(
      "{} ({}): {:.3f} ms, {:.3g} GFLOP, {:.3g} FLOP/byte, {:.3g} GFLOP/s, {:.3g} GB/s, "
      "{:.1f}% of roofline bound, {}-bound",
      l.name, l.op_type, l.time_ms, l.flops * 1e-9, l.intensity, l.achieved_gflops, l.achieved_gbs,
      l.percent_of_bound, bound_name(l));
}

std::string roofline_svg(const ModelProfile& p) {
  const double width = 760, height = 460, left = 70, right = 20, top = 20, bottom = 50;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  const Roof& roof = p.roof;
  double x_low = roof.balance() > 0 ? roof.balance() : 1, x_high = x_low;
  double y_low = roof.peak_gflops > 0 ? roof.peak_gflops : 1, y_high = y_low;
  for (const auto& l : p.layers) {
    if (l.flops <= 0) continue;
    x_low = std::min(x_low, l.intensity), x_high = std::max(x_high, l.intensity);
    if (l.achieved_gflops > 0) y_low = std::min(y_low, l.achieved_gflops);
    y_high = std::max(y_high, l.achieved_gflops);
  }
  LogAxis x = LogAxis::covering(x_low / 1.5, x_high * 1.5, left, plot_w, false);
  LogAxis y = LogAxis::covering(y_low / 1.5, y_high * 1.5, top, plot_h, true);

  std::string svg = fmt::format(
      "<svg id=\"roofline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" role=\"img\" aria-label=\"roofline chart\">\n",
      width, height);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"plot-area\"/>\n", left, top,
                     plot_w, plot_h);
  for (int d = x.first_decade; d <= x.last_decade; ++d) {
    double px = x.pixel(std::pow(10.0, d));
    svg += fmt::format(
        "<line class=\"grid\" x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\"/>"
        "<text class=\"tick\" x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        px, top, top + plot_h, top + plot_h + 16, decade_label(d));
  }
  for (int d = y.first_decade; d <= y.last_decade; ++d) {
    double py = y.pixel(std::pow(10.0, d));
    svg += fmt::format(
        "<line class=\"grid\" x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\"/>"
        "<text class=\"tick\" x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        left, py, left + plot_w, left - 6, py + 4, decade_label(d));
  }
  svg += fmt::format(
      "<text class=\"axis-title\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">arithmetic intensity "
      "(FLOP/byte)</text>\n",
      left + plot_w / 2, height - 10);
  svg += fmt::format(
      "<text class=\"axis-title\" transform=\"translate(16 {}) rotate(-90)\" "
      "text-anchor=\"middle\">GFLOP/s</text>\n",
      top + plot_h / 2);

  // The roofs: memory (slope = bandwidth) up to the balance point, then the flat compute roof.
  if (roof.peak_gflops > 0 && roof.bandwidth_gbs > 0) {
    double start_x = std::max(x.min(), y.min() / roof.bandwidth_gbs);
    double knee = roof.balance();
    svg += fmt::format(
        "<line class=\"roof memory-roof\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\">"
        "<title>memory roof: {:.3g} GB/s</title></line>\n",
        x.pixel(start_x), y.pixel(start_x * roof.bandwidth_gbs), x.pixel(knee), y.pixel(roof.peak_gflops),
        roof.bandwidth_gbs);
    svg += fmt::format(
        "<line class=\"roof compute-roof\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\">"
        "<title>compute roof: {:.3g} GFLOP/s</title></line>\n",
        x.pixel(knee), y.pixel(roof.peak_gflops), x.pixel(x.max()), y.pixel(roof.peak_gflops),
        roof.peak_gflops);
    svg += fmt::format(
        "<text class=\"roof-label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">peak {:.1f} GFLOP/s"
        "</text>\n",
        x.pixel(x.max()) - 4, y.pixel(roof.peak_gflops) - 6, roof.peak_gflops);
    svg += fmt::format("<text class=\"roof-label\" x=\"{:.1f}\" y=\"{:.1f}\">{:.1f} GB/s</text>\n",
                       x.pixel(start_x) + 6, y.pixel(start_x * roof.bandwidth_gbs) - 8, roof.bandwidth_gbs);
  }

  // Largest first so small points stay visible on top; area proportional to time.
  double longest = 0;
  for (const auto& l : p.layers) longest = std::max(longest, l.time_ms);
  std::vector<const LayerProfile*> order;
  for (const auto& l : p.layers) order.push_back(&l);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->time_ms > b->time_ms; });
  for (const LayerProfile* l : order) {
    const double radius = 2.5 + 14 * std::sqrt(longest > 0 ? l->time_ms / longest : 0);
    // Layers without FLOPs have no place on log axes; they sit on the bottom-left corner, hollow.
    const bool no_flops = l->flops <= 0;
    const double cx = no_flops ? x.pixel(x.min()) : x.pixel(l->intensity);
    const double cy = no_flops ? y.pixel(y.min()) : y.pixel(std::max(l->achieved_gflops, y.min()));
    svg += fmt::format(
        "<circle class=\"layer-point {}\" data-layer=\"{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{:.1f}\">"
        "<title>{}</title></circle>\n",
        no_flops ? "no-flops" : bound_name(*l), l->index, cx, cy, radius, html_escape(layer_tooltip(*l)));
  }
  svg += "</svg>\n";
  return svg;
}

std::string time_bars_svg(const ModelProfile& p) {
  const double row = 16, label_w = 260, value_w = 80, width = 760, top = 8;
  const double bar_w = width - label_w - value_w;
  const double height = top * 2 + row * double(p.layers.size());
  double longest = 0;
  for (const auto& l : p.layers) longest = std::max(longest, l.time_ms);
  std::string svg = fmt::format(
      "<svg id=\"layer-times\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" role=\"img\" aria-label=\"time per layer\">\n",
      width, height);
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const auto& l = p.layers[i];
    const double y = top + row * double(i);
    const double w = longest > 0 ? std::max(0.5, bar_w * l.time_ms / longest) : 0.5;
    svg += fmt::format(
        "<text class=\"bar-label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>"
        "<rect class=\"layer-bar {}\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\">"
        "<title>{}</title></rect>"
        "<text class=\"bar-value\" x=\"{:.1f}\" y=\"{:.1f}\">{:.3f} ms</text>\n",
        label_w - 6, y + row - 4, html_escape(truncate(l.name + " (" + l.op_type + ")", 40)),
        l.flops <= 0 ? "no-flops" : bound_name(l), label_w, y + 2, w, row - 4, html_escape(layer_tooltip(l)),
        label_w + w + 4, y + row - 4, l.time_ms);
  }
  svg += "</svg>\n";
  return svg;
}

const char* kStyle = R"(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.summary td { padding: 1px 12px 1px 0; }
.plot-area { fill: #fbfbfb; stroke: #999; }
.grid { stroke: #e2e2e2; } .tick { font-size: 11px; fill: #555; } .axis-title { font-size: 12px; }
.roof { stroke-width: 2.5; } .memory-roof { stroke: #1f5fa8; } .compute-roof { stroke: #b22222; }
.roof-label { font-size: 11px; fill: #333; }
circle.layer-point { fill-opacity: 0.55; stroke-width: 1; }
circle.compute { fill: #d9534f; stroke: #8b1f1b; } circle.memory { fill: #4a90d9; stroke: #1f5fa8; }
circle.no-flops { fill: none; stroke: #888; }
rect.layer-bar.compute { fill: #d9534f; } rect.layer-bar.memory { fill: #4a90d9; } rect.layer-bar.no-flops { fill: #aaa; }
.bar-label, .bar-value { font-size: 11px; fill: #333; }
table.layers { border-collapse: collapse; font-size: 12px; }
table.layers th, table.layers td { border-bottom: 1px solid #ddd; padding: 2px 6px; text-align: right; }
table.layers td.text, table.layers th.text { text-align: left; }
.legend span { margin-right: 16px; }
)";

}  // namespace

std::string profile_to_table(const ModelProfile& p) {
  std::string out;
  out += fmt::format("model {}  threads {}  iterations {}\n", p.model, p.threads, p.iterations);
  out += fmt::format(
      "machine {} ({})  peak {:.1f} GFLOP/s  bandwidth {:.1f} GB/s  balance {:.2f} FLOP/byte\n",
      p.machine.cpu_model, p.machine.isa, p.roof.peak_gflops, p.roof.bandwidth_gbs, p.roof.balance());
  out += fmt::format("{:>4} {:<30} {:<18} {:<18} {:>9} {:>8} {:>8} {:>9} {:>8} {:>7} {:>8} {:>7} {}\n", "#",
                     "name", "op", "output", "MFLOP", "MB", "FLOP/B", "time ms", "GFLOP/s", "GB/s",
                     "bound GF", "% bound", "bound");
  for (const auto& l : p.layers) {
    out += fmt::format(
        "{:>4} {:<30} {:<18} {:<18} {:>9.2f} {:>8.3f} {:>8.2f} {:>9.4f} {:>8.2f} {:>7.2f} {:>8.1f} "
        "{:>7.1f} {}\n",
        l.index, truncate(l.name, 30), truncate(l.op_type, 18), truncate(shapes_text(l.output_shapes), 18),
        l.flops * 1e-6, l.bytes * 1e-6, l.intensity, l.time_ms, l.achieved_gflops, l.achieved_gbs,
        l.bound_gflops, l.percent_of_bound, bound_name(l));
  }
  out += fmt::format(
      "latency {:.3f} ms (median; layers sum to {:.3f} ms)  {:.3f} GFLOP  achieved {:.2f} GFLOP/s  "
      "utilization {:.1f}% of peak\n",
      p.latency_ms, p.layer_time_ms, p.total_flops * 1e-9, p.achieved_gflops, p.utilization * 100);
  out += fmt::format(
      "median % of roofline bound: {:.1f}% (layers with FLOPs), {:.1f}% (all {} layers); "
      "time-weighted {:.1f}%\n",
      p.median_percent_of_bound, p.median_percent_of_bound_all_layers, p.layers.size(),
      p.time_weighted_percent_of_bound);
  out += fmt::format("compute-bound layers {}  memory-bound layers {}\n", p.compute_bound_layers,
                     p.memory_bound_layers);
  return out;
}

std::string profile_to_json(const ModelProfile& p) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : p.layers) {
    layers.push_back({{"index", l.index},
                      {"name", l.name},
                      {"op", l.op_type},
                      {"input_shapes", l.input_shapes},
                      {"output_shapes", l.output_shapes},
                      {"flops", l.flops},
                      {"bytes", l.bytes},
                      {"intensity", l.intensity},
                      {"time_ms", l.time_ms},
                      {"achieved_gflops", l.achieved_gflops},
                      {"achieved_gbs", l.achieved_gbs},
                      {"bound_gflops", l.bound_gflops},
                      {"bound_time_ms", l.bound_time_ms},
                      {"percent_of_bound", l.percent_of_bound},
                      {"bound", bound_name(l)},
                      {"int8", l.int8}});
  }
  nlohmann::json j = {{"format", "tessera-profile-1"},
                      {"model", p.model},
                      {"threads", p.threads},
                      {"iterations", p.iterations},
                      {"roof",
                       {{"peak_gflops", p.roof.peak_gflops},
                        {"bandwidth_gbs", p.roof.bandwidth_gbs},
                        {"balance_flop_per_byte", p.roof.balance()},
                        {"int8_peak_gops", p.roof.int8_peak_gops}}},
                      {"machine", nlohmann::json::parse(ceilings_to_json(p.machine))},
                      {"summary",
                       {{"latency_ms", p.latency_ms},
                        {"layer_time_ms", p.layer_time_ms},
                        {"total_flops", p.total_flops},
                        {"total_bytes", p.total_bytes},
                        {"achieved_gflops", p.achieved_gflops},
                        {"utilization", p.utilization},
                        {"median_percent_of_bound", p.median_percent_of_bound},
                        {"median_percent_of_bound_all_layers", p.median_percent_of_bound_all_layers},
                        {"time_weighted_percent_of_bound", p.time_weighted_percent_of_bound},
                        {"layer_count", p.layers.size()},
                        {"compute_bound_layers", p.compute_bound_layers},
                        {"memory_bound_layers", p.memory_bound_layers}}},
                      {"layers", layers}};
  return j.dump(2);
}

std::string profile_to_html(const ModelProfile& p) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<title>Tessera roofline profile: " + html_escape(p.model) + "</title>\n";
  html += std::string("<style>") + kStyle + "</style>\n</head>\n";
  html += fmt::format("<body data-layer-count=\"{}\" data-rendered-points=\"0\">\n", p.layers.size());
  html += "<h1>Roofline profile: " + html_escape(p.model) + "</h1>\n<table class=\"summary\">\n";
  auto row = [&](const std::string& key, const std::string& value) {
    html += "<tr><td>" + key + "</td><td>" + html_escape(value) + "</td></tr>\n";
  };
  row("machine", fmt::format("{} ({}), ceilings measured {}", p.machine.cpu_model, p.machine.isa,
                             p.machine.measured_at));
  row("threads / runs", fmt::format("{} / {} (per-layer times are medians)", p.threads, p.iterations));
  row("roofs", fmt::format("peak {:.1f} GFLOP/s, bandwidth {:.1f} GB/s, balance {:.2f} FLOP/byte",
                           p.roof.peak_gflops, p.roof.bandwidth_gbs, p.roof.balance()));
  row("latency", fmt::format("{:.3f} ms (median; layers sum to {:.3f} ms)", p.latency_ms, p.layer_time_ms));
  row("work",
      fmt::format("{:.3f} GFLOP, {:.1f} MB moved at least", p.total_flops * 1e-9, p.total_bytes * 1e-6));
  row("achieved",
      fmt::format("{:.2f} GFLOP/s, utilization {:.1f}% of peak", p.achieved_gflops, p.utilization * 100));
  row("median % of roofline bound",
      fmt::format("{:.1f}% (layers with FLOPs), {:.1f}% (all layers); time-weighted {:.1f}%",
                  p.median_percent_of_bound, p.median_percent_of_bound_all_layers,
                  p.time_weighted_percent_of_bound));
  row("layers", fmt::format("{} ({} compute-bound, {} memory-bound)", p.layers.size(), p.compute_bound_layers,
                            p.memory_bound_layers));
  html += "</table>\n<h2>Roofline</h2>\n";
  html +=
      "<p class=\"legend\"><span style=\"color:#d9534f\">&#9679; compute-bound</span>"
      "<span style=\"color:#4a90d9\">&#9679; memory-bound</span>"
      "<span style=\"color:#888\">&#9675; no FLOPs (pinned to the corner)</span>"
      "<span>area = time; hover a point for its layer</span> <span id=\"rendered-count\"></span></p>\n";
  html += roofline_svg(p);
  html += "<h2>Time per layer (execution order)</h2>\n";
  html += time_bars_svg(p);
  html +=
      "<h2>Layers</h2>\n<table class=\"layers\">\n<tr><th>#</th><th class=\"text\">name</th><th "
      "class=\"text\">op"
      "</th><th class=\"text\">inputs</th><th "
      "class=\"text\">outputs</th><th>MFLOP</th><th>MB</th><th>FLOP/byte</th>"
      "<th>time ms</th><th>GFLOP/s</th><th>GB/s</th><th>bound GFLOP/s</th><th>% of bound</th><th "
      "class=\"text\">"
      "bound</th></tr>\n";
  for (const auto& l : p.layers) {
    html += fmt::format(
        "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td>"
        "<td class=\"text\">{}</td><td>{:.2f}</td><td>{:.3f}</td><td>{:.2f}</td><td>{:.4f}</td>"
        "<td>{:.2f}</td><td>{:.2f}</td><td>{:.1f}</td><td>{:.1f}</td><td class=\"text\">{}</td></tr>\n",
        l.index, html_escape(l.name), html_escape(l.op_type), html_escape(shapes_text(l.input_shapes)),
        html_escape(shapes_text(l.output_shapes)), l.flops * 1e-6, l.bytes * 1e-6, l.intensity, l.time_ms,
        l.achieved_gflops, l.achieved_gbs, l.bound_gflops, l.percent_of_bound, bound_name(l));
  }
  html += "</table>\n";
  // Counts the points that actually got a layout box, so a headless browser can confirm the chart drew.
  html += R"(<script>
(function () {
  var points = document.querySelectorAll('circle.layer-point');
  var drawn = 0;
  for (var i = 0; i < points.length; i++) {
    var box = points[i].getBBox();
    if (box.width > 0 && box.height > 0) drawn++;
  }
  document.body.setAttribute('data-rendered-points', String(drawn));
  document.getElementById('rendered-count').textContent = drawn + ' of ' + points.length + ' layers drawn';
})();
</script>
</body>
</html>
)";
  return html;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error("cannot write " + path);
  out << text;
  if (!out) throw Error("failed writing " + path);
}

}  // namespace tessera::analysis
