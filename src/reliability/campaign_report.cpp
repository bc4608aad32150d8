// Campaign reports: aggregation, table, JSON, CSV, HTML.
#include "reliability/campaign_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "analysis/roofline_report.h"

namespace tessera::reliability {

int64_t OutcomeCounts::sdc() const {
  return count[size_t(Outcome::tolerable_sdc)] + count[size_t(Outcome::critical_sdc)] +
         count[size_t(Outcome::non_finite)];
}
int64_t OutcomeCounts::critical() const {
  return count[size_t(Outcome::critical_sdc)] + count[size_t(Outcome::non_finite)];
}
void OutcomeCounts::add(Outcome outcome) {
  ++count[size_t(outcome)];
  ++total;
}

namespace {

constexpr Outcome kOutcomes[kOutcomeCount] = {Outcome::masked, Outcome::tolerable_sdc, Outcome::critical_sdc,
                                             Outcome::detected, Outcome::non_finite};

// Groups records by the key `key(record)` gives (records with an empty key are left out), in
// first-seen order.
template <typename Key>
std::vector<OutcomeGroup> group_by(const CampaignResult& result, Key key) {
  std::vector<OutcomeGroup> groups;
  std::map<std::string, size_t> index;
  for (const InjectionRecord& r : result.records) {
    auto [name, op] = key(r);
    if (name.empty()) continue;
    auto it = index.find(name);
    if (it == index.end()) {
      it = index.emplace(name, groups.size()).first;
      groups.push_back(OutcomeGroup{name, op, {}});
    }
    groups[it->second].counts.add(r.outcome);
  }
  return groups;
}

nlohmann::json rate_json(int64_t k, int64_t n, double confidence) {
  auto [lo, hi] = wilson_interval(k, n, confidence);
  return {{"count", k}, {"rate", n ? double(k) / double(n) : 0.0}, {"low", lo}, {"high", hi}};
}

nlohmann::json counts_json(const OutcomeCounts& c, double confidence) {
  nlohmann::json j;
  j["injections"] = c.total;
  for (Outcome o : kOutcomes) j[outcome_name(o)] = rate_json(c.count[size_t(o)], c.total, confidence);
  j["sdc"] = rate_json(c.sdc(), c.total, confidence);
  j["critical"] = rate_json(c.critical(), c.total, confidence);
  return j;
}

std::string percent(int64_t k, int64_t n) { return n ? fmt::format("{:.2f}%", 100.0 * double(k) / double(n)) : "-"; }

std::string interval_text(int64_t k, int64_t n, double confidence) {
  auto [lo, hi] = wilson_interval(k, n, confidence);
  return fmt::format("[{:.2f}, {:.2f}]%", 100 * lo, 100 * hi);
}

nlohmann::json records_json(const std::vector<InjectionRecord>& records) {
  nlohmann::json a = nlohmann::json::array();
  // Non-finite numbers as text ("nan", "inf", "-inf"): JSON has no literal for them.
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(fmt::format("{}", v)); };
  for (const InjectionRecord& r : records)
    a.push_back({{"index", r.index}, {"sample", r.sample}, {"step", r.step}, {"layer", r.layer}, {"op_type", r.op_type},
                 {"site", fault_site_name(r.site)}, {"element", r.element}, {"elements", r.elements}, {"bit", r.bit},
                 {"pattern", r.pattern}, {"value_class", r.value_class}, {"before", number(r.before)},
                 {"after", number(r.after)}, {"effect", outcome_name(r.effect)}, {"outcome", outcome_name(r.outcome)},
                 {"output_error", number(r.output_error)}, {"steps_run", r.steps_run}});
  return a;
}

double injections_per_second(const CampaignResult& r) {
  return r.seconds > 0 ? double(r.records.size()) / r.seconds : 0;
}

}  // namespace

CampaignSummary summarize_campaign(const CampaignResult& result) {
  CampaignSummary s;
  for (const InjectionRecord& r : result.records) s.overall.add(r.outcome);
  s.by_layer = group_by(result, [](const InjectionRecord& r) { return std::pair{r.layer, r.op_type}; });
  // Layers in step order.
  std::map<std::string, int> step_of;
  for (const InjectionRecord& r : result.records) step_of[r.layer] = r.step;
  std::stable_sort(s.by_layer.begin(), s.by_layer.end(),
                   [&](const OutcomeGroup& a, const OutcomeGroup& b) { return step_of[a.key] < step_of[b.key]; });
  s.by_bit = group_by(result, [](const InjectionRecord& r) {
    return std::pair{r.bit >= 0 ? std::to_string(r.bit) : std::string(), std::string()};
  });
  std::sort(s.by_bit.begin(), s.by_bit.end(),
            [](const OutcomeGroup& a, const OutcomeGroup& b) { return std::stoi(a.key) < std::stoi(b.key); });
  s.by_pattern = group_by(result, [](const InjectionRecord& r) { return std::pair{r.pattern, std::string()}; });
  s.by_site = group_by(result, [](const InjectionRecord& r) { return std::pair{std::string(fault_site_name(r.site)), std::string()}; });
  return s;
}

std::string campaign_to_table(const CampaignResult& result, const CampaignSummary& s, const CampaignDescription& d) {
  std::string out;
  out += fmt::format("Fault-injection campaign: {}\n", d.model);
  out += fmt::format("  fault {}  site {}{}  seed {}  metric {}  ABFT {}\n", d.fault, d.site,
                     d.pattern.empty() ? "" : "  pattern " + d.pattern, d.seed, d.metric, d.abft);
  const std::string sizing = d.margin > 0 ? fmt::format("sized for margin {} at {:.0f}% confidence", d.margin, 100 * d.confidence)
                                          : std::string("count given");
  out += fmt::format("  {} injections of {} planned (population {:.3g}; {}), {} samples\n", result.records.size(),
                     result.planned, result.population, sizing, d.samples);
  out += fmt::format("  {:.2f} s on {} threads: {:.1f} injections/s (golden runs {:.3f} s), {:.1f} of {} steps re-run on average\n",
                     result.seconds, result.threads, injections_per_second(result), result.golden_seconds,
                     result.records.empty() ? 0.0
                                            : [&] {
                                                double steps = 0;
                                                for (const auto& r : result.records) steps += r.steps_run;
                                                return steps / double(result.records.size());
                                              }(),
                     result.steps);
  const OutcomeCounts& c = s.overall;
  out += "\n  outcome          count    rate     interval\n";
  for (Outcome o : kOutcomes)
    out += fmt::format("  {:<15} {:>6}  {:>7}  {}\n", outcome_name(o), c.count[size_t(o)], percent(c.count[size_t(o)], c.total),
                       interval_text(c.count[size_t(o)], c.total, d.confidence));
  out += fmt::format("  {:<15} {:>6}  {:>7}  {}\n", "sdc (all)", c.sdc(), percent(c.sdc(), c.total),
                     interval_text(c.sdc(), c.total, d.confidence));
  if (s.by_layer.size() > 1) {
    // The layers with the highest critical rate first (at most 15).
    std::vector<OutcomeGroup> layers = s.by_layer;
    std::stable_sort(layers.begin(), layers.end(), [](const OutcomeGroup& a, const OutcomeGroup& b) {
      return double(a.counts.critical()) / double(a.counts.total) > double(b.counts.critical()) / double(b.counts.total);
    });
    out += "\n  layers by critical rate   injections  sdc      critical  critical interval\n";
    for (size_t i = 0; i < std::min<size_t>(15, layers.size()); ++i) {
      const OutcomeCounts& lc = layers[i].counts;
      std::string name = layers[i].key.size() > 24 ? layers[i].key.substr(0, 23) + "~" : layers[i].key;
      out += fmt::format("  {:<24} {:>10}  {:>7}  {:>7}  {}\n", name, lc.total, percent(lc.sdc(), lc.total),
                         percent(lc.critical(), lc.total), interval_text(lc.critical(), lc.total, d.confidence));
    }
  }
  return out;
}

std::string campaign_to_json(const CampaignResult& result, const CampaignSummary& s, const CampaignDescription& d,
                             bool with_records) {
  nlohmann::json j;
  j["model"] = d.model;
  j["fault"] = d.fault;
  j["site"] = d.site;
  j["pattern"] = d.pattern;
  j["metric"] = d.metric;
  j["abft"] = d.abft;
  j["seed"] = d.seed;
  j["margin"] = d.margin;
  j["confidence"] = d.confidence;
  j["samples"] = d.samples;
  j["planned_injections"] = result.planned;
  j["injections"] = int64_t(result.records.size());
  j["population"] = result.population;
  j["threads"] = result.threads;
  j["steps"] = result.steps;
  j["seconds"] = result.seconds;
  j["golden_seconds"] = result.golden_seconds;
  j["injections_per_second"] = injections_per_second(result);
  j["outcomes"] = counts_json(s.overall, d.confidence);
  auto groups = [&](const std::vector<OutcomeGroup>& list, const char* key_name) {
    nlohmann::json a = nlohmann::json::array();
    for (const OutcomeGroup& g : list) {
      nlohmann::json e = counts_json(g.counts, d.confidence);
      e[key_name] = g.key;
      if (!g.op_type.empty()) e["op_type"] = g.op_type;
      a.push_back(e);
    }
    return a;
  };
  j["per_layer"] = groups(s.by_layer, "layer");
  j["per_bit"] = groups(s.by_bit, "bit");
  j["per_pattern"] = groups(s.by_pattern, "pattern");
  j["per_site"] = groups(s.by_site, "site");
  if (with_records) j["records"] = records_json(result.records);
  return j.dump(1) + "\n";
}

std::string records_to_json(const std::vector<InjectionRecord>& records) { return records_json(records).dump(); }

std::vector<InjectionRecord> records_from_json(const std::string& text) {
  std::vector<InjectionRecord> records;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    auto number = [](const nlohmann::json& v) {
      return v.is_number() ? v.get<double>() : std::strtod(v.get<std::string>().c_str(), nullptr);
    };
    auto outcome = [](const std::string& name) {
      for (Outcome o : kOutcomes)
        if (name == outcome_name(o)) return o;
      throw Error("unknown outcome '" + name + "'");
    };
    for (const auto& e : j) {
      InjectionRecord r;
      r.index = e.at("index").get<int64_t>();
      r.sample = e.at("sample").get<int>();
      r.step = e.at("step").get<int>();
      r.layer = e.at("layer").get<std::string>();
      r.op_type = e.at("op_type").get<std::string>();
      const std::string site = e.at("site").get<std::string>();
      r.site = site == "weight" ? FaultSite::weight : site == "accumulator" ? FaultSite::accumulator : FaultSite::activation;
      r.element = e.at("element").get<int64_t>();
      r.elements = e.at("elements").get<int64_t>();
      r.bit = e.at("bit").get<int>();
      r.pattern = e.at("pattern").get<std::string>();
      r.value_class = e.at("value_class").get<std::string>();
      r.before = number(e.at("before"));
      r.after = number(e.at("after"));
      r.effect = outcome(e.at("effect").get<std::string>());
      r.outcome = outcome(e.at("outcome").get<std::string>());
      r.output_error = number(e.at("output_error"));
      r.steps_run = e.at("steps_run").get<int>();
      records.push_back(std::move(r));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("campaign records: ") + e.what());
  }
  return records;
}

std::string campaign_to_csv(const CampaignResult& result) {
  std::string out =
      "index,sample,step,layer,op_type,site,element,elements,bit,pattern,value_class,before,after,effect,outcome,"
      "output_error,steps_run\n";
  auto quoted = [](const std::string& s) {
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const InjectionRecord& r : result.records)
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{:.9g},{:.9g},{},{},{:.6g},{}\n", r.index, r.sample, r.step,
                       quoted(r.layer), quoted(r.op_type), fault_site_name(r.site), r.element, r.elements, r.bit,
                       quoted(r.pattern), r.value_class, r.before, r.after, outcome_name(r.effect),
                       outcome_name(r.outcome), r.output_error, r.steps_run);
  return out;
}

namespace {

// One horizontal stacked bar per group: the share of each outcome, with the critical rate's
// Wilson interval as a whisker.
std::string stacked_bar_chart(const std::string& title, const std::vector<OutcomeGroup>& groups, double confidence) {
  static const char* kColours[kOutcomeCount] = {"#cfd8dc", "#ffb74d", "#e53935", "#43a047", "#8e24aa"};
  const int label_w = 210, bar_w = 520, row = 18, top = 28;
  const int height = top + row * int(groups.size()) + 30;
  std::string svg = fmt::format(
      "<h2>{}</h2>\n<svg class=\"chart\" width=\"{}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
      analysis::html_escape(title), label_w + bar_w + 120, height);
  for (int t = 0; t <= 4; ++t) {
    const int x = label_w + bar_w * t / 4;
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#eee\"/>"
                       "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}%</text>\n",
                       x, top - 4, x, height - 26, x, top - 8, 25 * t);
  }
  int y = top;
  for (const OutcomeGroup& g : groups) {
    const OutcomeCounts& c = g.counts;
    std::string label = g.key + (g.op_type.empty() ? "" : " (" + g.op_type + ")");
    if (label.size() > 34) label = label.substr(0, 33) + "~";
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n", label_w - 6,
                       y + row - 5, analysis::html_escape(label));
    double x = label_w;
    for (Outcome o : kOutcomes) {
      const double w = c.total ? bar_w * double(c.count[size_t(o)]) / double(c.total) : 0;
      if (w <= 0) continue;
      svg += fmt::format(
          "<rect class=\"bar\" data-outcome=\"{}\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\">"
          "<title>{}: {} of {} ({})</title></rect>\n",
          outcome_name(o), x, y + 2, w, row - 4, kColours[size_t(o)], outcome_name(o), c.count[size_t(o)], c.total,
          percent(c.count[size_t(o)], c.total));
      x += w;
    }
    auto [lo, hi] = wilson_interval(c.critical(), c.total, confidence);
    svg += fmt::format("<line class=\"interval\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\"/>"
                       "<text x=\"{}\" y=\"{}\" font-size=\"10\">n={} crit {}</text>\n",
                       label_w + bar_w * lo, label_w + bar_w * hi, y + row / 2, y + row / 2, label_w + bar_w + 6,
                       y + row - 5, c.total, percent(c.critical(), c.total));
    y += row;
  }
  // Legend.
  int lx = label_w;
  for (Outcome o : kOutcomes) {
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>"
                       "<text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>\n",
                       lx, height - 18, kColours[size_t(o)], lx + 14, height - 9, outcome_name(o));
    lx += 104;
  }
  return svg + "</svg>\n";
}

}  // namespace

std::string campaign_to_html(const CampaignResult& result, const CampaignSummary& s, const CampaignDescription& d) {
  std::string html = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n<title>Tessera fault-injection campaign: " +
                     analysis::html_escape(d.model) + "</title>\n";
  html += "<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
          "td:first-child{text-align:left}</style></head><body>\n";
  html += "<h1>Fault-injection campaign</h1>\n<p>" + analysis::html_escape(d.model) + "<br>fault " +
          analysis::html_escape(d.fault) + ", site " + analysis::html_escape(d.site) +
          (d.pattern.empty() ? "" : ", pattern " + analysis::html_escape(d.pattern)) + ", seed " + std::to_string(d.seed) +
          ", metric " + analysis::html_escape(d.metric) + ", ABFT " + analysis::html_escape(d.abft) + "<br>" +
          fmt::format("{} injections ({} planned; population {:.3g}) in {:.2f} s on {} threads: {:.1f} injections/s",
                      result.records.size(), result.planned, result.population, result.seconds, result.threads,
                      injections_per_second(result)) +
          "</p>\n";
  html += "<table><tr><th>outcome</th><th>count</th><th>rate</th><th>" +
          fmt::format("{:.0f}% interval", 100 * d.confidence) + "</th></tr>\n";
  for (Outcome o : kOutcomes) {
    const int64_t k = s.overall.count[size_t(o)];
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", outcome_name(o), k,
                        percent(k, s.overall.total), interval_text(k, s.overall.total, d.confidence));
  }
  html += "</table>\n";
  html += stacked_bar_chart("Outcomes per layer", s.by_layer, d.confidence);
  if (!s.by_bit.empty()) html += stacked_bar_chart("Outcomes per bit position", s.by_bit, d.confidence);
  if (!s.by_pattern.empty()) html += stacked_bar_chart("Outcomes per error pattern", s.by_pattern, d.confidence);
  if (s.by_site.size() > 1) html += stacked_bar_chart("Outcomes per site", s.by_site, d.confidence);
  html += "</body></html>\n";
  return html;
}

}  // namespace tessera::reliability
