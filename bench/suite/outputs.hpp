// What rank 0 writes: results.csv (every run), summary.csv (medians, min, max), results.json
// (meta, runs, summary, headline ratios), plots (gnuplot, PNG and SVG) and report.md.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/suite/measurement.hpp"
#include "bench/suite/summary.hpp"

namespace hymig::bench {

// "1gbit tbf on the sender, iperf3 cubic", "1gbit tbf in a middle namespace, ..." (--shared-rate
// external:1gbit).
std::string shared_link_label(const std::string& rate, const std::string& cc);

// The headline ratios: hymig against the raw TCP stream, each transport under loss against its
// own lossless figure, and the shares on the shared link. Entries are {"what", "value", "detail"}.
nlohmann::json headline_ratios(const std::vector<SummaryRow>& rows, const std::vector<Record>& records,
                               const std::string& shared_rate, const std::string& shared_cc);

void write_csv(const std::string& dir, const std::vector<Record>& records, const std::vector<SummaryRow>& rows);
void write_json(const std::string& dir, const nlohmann::json& meta, const std::vector<Record>& records,
                const std::vector<SummaryRow>& rows, const nlohmann::json& headlines);

// Writes the .dat and .gp files and runs gnuplot for PNG and SVG; returns the plot names made
// (without extension). A missing gnuplot is reported in `problem`, not thrown.
std::vector<std::string> write_plots(const std::string& dir, const std::vector<SummaryRow>& rows,
                                     const std::vector<Record>& records, std::string& problem);

void write_markdown(const std::string& dir, const nlohmann::json& meta, const std::vector<SummaryRow>& rows,
                    const nlohmann::json& headlines, const std::vector<std::string>& plots);

}  // namespace hymig::bench
