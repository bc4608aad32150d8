// Reports of a roofline profile: a text table for the terminal, JSON (fields documented in
// docs/PROFILER.md) and one self-contained HTML file with SVG charts.
#pragma once
#include <string>

#include "analysis/roofline_profiler.h"

namespace tessera::analysis {

std::string profile_to_table(const ModelProfile& profile);
std::string profile_to_json(const ModelProfile& profile);
// No external resources: inline CSS, inline SVG (roofline: one circle.layer-point per layer;
// per-layer time bars) and a small inline script that counts the drawn points into
// body[data-rendered-points].
std::string profile_to_html(const ModelProfile& profile);
// &, <, >, " and ' as HTML entities.
std::string html_escape(const std::string& s);
// Writes text to a file or throws an Error naming the path.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace tessera::analysis
