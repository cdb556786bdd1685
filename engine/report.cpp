#include "engine/report.hpp"

#include <fmt/format.h>

namespace hymig {

nlohmann::json MigrationReport::to_json() const {
  const double image_bytes = static_cast<double>(pages_total) * page_size;
  nlohmann::json rounds_j = nlohmann::json::array();
  for (const auto& r : round_stats)
    rounds_j.push_back({{"round", r.round}, {"pages", r.pages}, {"bytes", r.bytes}, {"seconds", r.seconds},
                        {"rate_gbps", r.rate * 8 / 1e9}, {"loss", r.loss}, {"missing_after", r.missing_after},
                        {"dirty_after", r.dirty_after}});
  nlohmann::json j = {
      {"committed", outcome == Outcome::committed},
      {"outcome", outcome == Outcome::committed ? "committed"
                  : outcome == Outcome::unknown ? "unknown"
                                                : "failed"},
      {"verified", verified},
      {"session", fmt::format("{:016x}", session)},
      {"image", {{"kind", image_kind}, {"name", image_name}, {"bytes", image_bytes}}},
      {"total_ms", total_ms},
      {"downtime_ms", downtime_ms},
      {"setup_ms", setup_ms},
      {"cleanup_ms", cleanup_ms},
      {"rounds", rounds},
      {"stop_reason", stop_reason},
      {"page_size", page_size},
      {"pages_total", pages_total},
      {"zero_pages", zero_pages},
      {"missing_pages", missing_pages},
      {"modified_pages", modified_pages},
      {"final_delta_pages", final_delta_pages},
      {"final_delta",
       [&] {
         nlohmann::json f = {{"method", final_delta_method},
                             {"datagram_rounds", final_datagram_rounds},
                             {"datagram_pages", final_datagram_pages},
                             {"reliable_pages", final_reliable_pages}};
         if (!final_delta_note.empty()) f["note"] = final_delta_note;
         return f;
       }()},
      {"throughput_gbps", total_ms > 0 ? image_bytes * 8 / (total_ms / 1000) / 1e9 : 0.0},
      {"bulk",
       {{"transport", bulk_transport},
        {"lanes", lanes},
        {"bytes", bulk_bytes},
        {"datagrams", bulk_datagrams},
        {"datagram_bytes", datagram_bytes},
        {"final_rate_gbps", final_rate * 8 / 1e9},
        {"random_loss", random_loss},
        {"compression",
         {{"mode", compression},
          {"pages", compressed_pages},
          {"bytes", compressed_bytes},
          {"ratio", compression_ratio},
          {"zstd_us_per_page", zstd_us_per_page},
          {"idle_us_per_page", idle_us_per_page},
          {"trials", compression_trials},
          {"active_at_end", compression_active}}}}},
      {"reliable", {{"transport", reliable_transport}, {"bytes", reliable_bytes}}},
      {"digest", digest},
      {"round_stats", rounds_j},
  };
  j["downtime_parts"] = {{"pause_ms", downtime_parts.pause_ms},
                         {"final_delta_ms", downtime_parts.final_delta_ms},
                         {"verify_ms", downtime_parts.verify_ms},
                         {"device_state_ms", downtime_parts.device_state_ms},
                         {"commit_ms", downtime_parts.commit_ms}};
  j["cpu"] = {{"user_s", cpu_user_s}, {"system_s", cpu_system_s}};
  if (image_kind == "vm") j["device_state_bytes"] = device_state_bytes;
  if (!cleanup_error.empty()) j["cleanup_error"] = cleanup_error;
  if (!error.empty()) j["error"] = error;
  if (!plan.is_null()) j["plan"] = plan;
  return j;
}

std::string MigrationReport::to_text() const {
  const double image_bytes = static_cast<double>(pages_total) * page_size;
  std::string s = fmt::format("outcome      {}{}\n", outcome == Outcome::committed ? "committed" : outcome == Outcome::unknown ? "UNKNOWN" : "failed",
                              error.empty() ? "" : " — " + error);
  s += fmt::format("image        {} {} ({:.1f} MiB, {} pages of {} B, {} zero)\n", image_kind, image_name,
                   image_bytes / (1 << 20), pages_total, page_size, zero_pages);
  s += fmt::format("transports   bulk {} ({} B datagrams), reliable {}\n", bulk_transport, datagram_bytes, reliable_transport);
  s += fmt::format("time         total {:.1f} ms (setup {:.1f}; then cleanup {:.1f}), downtime {:.1f} ms, {:.2f} Gbit/s\n",
                   total_ms, setup_ms, cleanup_ms, downtime_ms, total_ms > 0 ? image_bytes * 8 / (total_ms / 1000) / 1e9 : 0.0);
  s += fmt::format("downtime     pause {:.1f} + final delta {:.1f} + verify {:.1f} + device state {:.1f} + commit {:.1f} ms\n",
                   downtime_parts.pause_ms, downtime_parts.final_delta_ms, downtime_parts.verify_ms,
                   downtime_parts.device_state_ms, downtime_parts.commit_ms);
  if (image_kind == "vm") s += fmt::format("device state {} bytes\n", device_state_bytes);
  if (!cleanup_error.empty()) s += fmt::format("cleanup      FAILED: {} (the source copy is paused: end it by hand)\n", cleanup_error);
  s += fmt::format("rounds       {} ({})\n", rounds, stop_reason);
  for (const auto& r : round_stats)
    s += fmt::format("  round {:<3}  {:>9} pages  {:>8.1f} ms  rate {:>6.2f} Gbit/s  loss {:>5.1f} %  missing {}  dirty {}\n",
                     r.round, r.pages, r.seconds * 1000, r.rate * 8 / 1e9, r.loss * 100, r.missing_after, r.dirty_after);
  s += fmt::format("final delta  {} pages = {} missing ∪ {} modified, {}by {}{}\n", final_delta_pages, missing_pages,
                   modified_pages,
                   final_datagram_rounds ? fmt::format("{} datagram round(s) ({} pages), the rest ", final_datagram_rounds,
                                                       final_datagram_pages)
                                         : "",
                   final_delta_method, final_delta_note.empty() ? "" : " (" + final_delta_note + ")");
  s += fmt::format("verified     {}  digest {}\n", verified ? "yes" : "no", digest);
  s += fmt::format("bytes        bulk {} in {} datagrams{}, reliable {}\n", bulk_bytes, bulk_datagrams,
                   lanes > 1 ? fmt::format(" over {} lanes", lanes) : "", reliable_bytes);
  if (compression != "off")
    s += fmt::format("compression  {}: {} pages went compressed ({:.1f} MiB as {:.1f} MiB)\n", compression,
                     compressed_pages, static_cast<double>(compressed_pages) * page_size / (1 << 20),
                     static_cast<double>(compressed_bytes) / (1 << 20));
  return s;
}

}  // namespace hymig
