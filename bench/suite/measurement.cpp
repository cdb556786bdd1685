#include "bench/suite/measurement.hpp"

namespace hymig::bench {

const char* to_string(Measurement::Status s) {
  switch (s) {
    case Measurement::Status::ok: return "ok";
    case Measurement::Status::skipped: return "skipped";
    case Measurement::Status::failed: break;
  }
  return "failed";
}

nlohmann::json to_json(const Record& r) {
  const auto& m = r.m;
  nlohmann::json j = {{"pair", r.pair},
                      {"scenario", r.scenario},
                      {"transport", r.cell.transport},
                      {"size", r.cell.size},
                      {"dirty_rate", r.cell.dirty_rate},
                      {"loss", r.cell.loss},
                      {"rep", r.cell.rep},
                      {"status", to_string(m.status)},
                      {"note", m.note},
                      {"capped", m.capped},
                      {"seconds", m.seconds},
                      {"bytes", m.bytes},
                      {"gbps", m.gbps()},
                      {"downtime_ms", m.downtime_ms},
                      {"rounds", m.rounds},
                      {"wire_bytes", m.wire_bytes},
                      {"verified", m.verified},
                      {"sender_cpu_s", m.sender_cpu_s},
                      {"receiver_cpu_s", m.receiver_cpu_s}};
  if (!m.series.empty()) j["series"] = m.series;
  return j;
}

Record record_from_json(const nlohmann::json& j) {
  Record r;
  r.pair = j.at("pair");
  r.scenario = j.at("scenario");
  r.cell = {j.at("transport"), j.at("size"), j.at("dirty_rate"), j.at("loss"), j.at("rep")};
  const std::string st = j.at("status");
  r.m.status = st == "ok" ? Measurement::Status::ok
               : st == "skipped" ? Measurement::Status::skipped
                                 : Measurement::Status::failed;
  r.m.note = j.at("note");
  r.m.capped = j.at("capped");
  r.m.seconds = j.at("seconds");
  r.m.bytes = j.at("bytes");
  r.m.downtime_ms = j.at("downtime_ms");
  r.m.rounds = j.at("rounds");
  r.m.wire_bytes = j.at("wire_bytes");
  r.m.verified = j.at("verified");
  r.m.sender_cpu_s = j.value("sender_cpu_s", -1.0);
  r.m.receiver_cpu_s = j.value("receiver_cpu_s", -1.0);
  if (j.contains("series")) r.m.series = j["series"].get<std::vector<std::pair<double, double>>>();
  return r;
}

}  // namespace hymig::bench
