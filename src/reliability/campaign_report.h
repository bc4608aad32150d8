// Reports of a fault-injection campaign: outcome rates with Wilson intervals, overall and per
// layer, bit position, spatial pattern and site kind; as a terminal table, JSON (fields in
// docs/FAULT_INJECTION.md), CSV (one row per injection) and one self-contained HTML page with
// SVG charts.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "reliability/fault_campaign.h"

namespace tessera::reliability {

// What the campaign was asked (echoed into the reports).
struct CampaignDescription {
  std::string model, fault, site, pattern, metric, abft = "off";
  uint64_t seed = 1;
  double margin = 0, confidence = 0.95;
  int64_t samples = 1;
};

struct OutcomeCounts {
  std::array<int64_t, kOutcomeCount> count{};
  int64_t total = 0;
  // Silent data corruption: tolerable + critical + non-finite (undetected changes of the output).
  int64_t sdc() const;
  int64_t critical() const;  // critical + non-finite: the answer changed or broke
  void add(Outcome outcome);
};

struct OutcomeGroup {
  std::string key;       // layer name, bit position, pattern or site kind
  std::string op_type;   // layers only
  OutcomeCounts counts;
};

struct CampaignSummary {
  OutcomeCounts overall;
  std::vector<OutcomeGroup> by_layer, by_bit, by_pattern, by_site;  // layers in step order
};

CampaignSummary summarize_campaign(const CampaignResult& result);

std::string campaign_to_table(const CampaignResult& result, const CampaignSummary& summary,
                              const CampaignDescription& description);
std::string campaign_to_json(const CampaignResult& result, const CampaignSummary& summary,
                             const CampaignDescription& description, bool with_records = true);
std::string campaign_to_csv(const CampaignResult& result);
// Records as JSON text (an array, the "records" of campaign_to_json) and back: how the shares of
// a campaign split over processes are gathered.
std::string records_to_json(const std::vector<InjectionRecord>& records);
std::vector<InjectionRecord> records_from_json(const std::string& text);
std::string campaign_to_html(const CampaignResult& result, const CampaignSummary& summary,
                             const CampaignDescription& description);

}  // namespace tessera::reliability
