#include "cli/serve_metrics.hpp"

#include <microhttpd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/unique_fd.hpp"

namespace hymig::cli {
namespace {

// Label values are escaped as the exposition format asks (backslash, quote, newline).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

void ServeMetrics::Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++counts[i];
  sum += v;
  ++count;
}

void ServeMetrics::Histogram::write(std::string& out, const char* name) const {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count, name, sum, name, count);
}

void ServeMetrics::finished(const FinishedMigration& m) {
  const std::lock_guard lock(mutex_);
  (m.committed ? committed_ : failed_) += 1;
  bytes_ += m.bytes_received;
  const std::uint64_t d[] = {m.bad_mac,  m.replayed,       m.future_round, m.stale,
                             m.bad_hash, m.bad_compressed, m.invalid,      m.broken_record};
  static_assert(std::size(d) == std::size(kDropReasons));
  for (std::size_t i = 0; i < dropped_.size(); ++i) dropped_[i] += d[i];
  if (m.committed) {
    total_.observe(m.seconds);
    if (m.blackout_s >= 0) blackout_.observe(m.blackout_s);
  }
}

std::string ServeMetrics::exposition(const std::vector<RunningMigration>& running, bool draining) const {
  const std::lock_guard lock(mutex_);
  std::string o;
  o += "# HELP hymig_incoming_migrations_total Migrations this daemon received, by outcome.\n"
       "# TYPE hymig_incoming_migrations_total counter\n";
  o += fmt::format("hymig_incoming_migrations_total{{outcome=\"committed\"}} {}\n", committed_);
  o += fmt::format("hymig_incoming_migrations_total{{outcome=\"failed\"}} {}\n", failed_);
  o += "# HELP hymig_received_bytes_total Bytes finished migrations received (datagrams and the reliable channel).\n"
       "# TYPE hymig_received_bytes_total counter\n";
  o += fmt::format("hymig_received_bytes_total {}\n", bytes_);
  o += "# HELP hymig_datagrams_dropped_total Datagrams dropped by finished migrations, by reason.\n"
       "# TYPE hymig_datagrams_dropped_total counter\n";
  for (std::size_t i = 0; i < dropped_.size(); ++i)
    o += fmt::format("hymig_datagrams_dropped_total{{reason=\"{}\"}} {}\n", kDropReasons[i], dropped_[i]);
  o += "# HELP hymig_blackout_seconds Pause to commit of committed migrations, as the destination saw it.\n"
       "# TYPE hymig_blackout_seconds histogram\n";
  blackout_.write(o, "hymig_blackout_seconds");
  o += "# HELP hymig_migration_seconds Total time of committed migrations at the destination.\n"
       "# TYPE hymig_migration_seconds histogram\n";
  total_.write(o, "hymig_migration_seconds");
  o += "# HELP hymig_incoming_running Migrations being received now.\n# TYPE hymig_incoming_running gauge\n";
  o += fmt::format("hymig_incoming_running {}\n", running.size());
  o += "# HELP hymig_incoming_remaining_bytes Bytes of the current round still to come, per running migration.\n"
       "# TYPE hymig_incoming_remaining_bytes gauge\n";
  for (const auto& r : running)
    o += fmt::format("hymig_incoming_remaining_bytes{{session=\"{}\",image=\"{}\"}} {}\n", label(r.session), label(r.image),
                     r.remaining_bytes);
  o += "# HELP hymig_incoming_received_bytes Bytes received so far, per running migration.\n"
       "# TYPE hymig_incoming_received_bytes gauge\n";
  for (const auto& r : running)
    o += fmt::format("hymig_incoming_received_bytes{{session=\"{}\",image=\"{}\"}} {}\n", label(r.session), label(r.image),
                     r.bytes_received);
  o += "# HELP hymig_incoming_dirty_bytes_per_second The guest's dirty rate as the rounds' sizes show it.\n"
       "# TYPE hymig_incoming_dirty_bytes_per_second gauge\n";
  for (const auto& r : running)
    o += fmt::format("hymig_incoming_dirty_bytes_per_second{{session=\"{}\",image=\"{}\"}} {:.0f}\n", label(r.session),
                     label(r.image), r.dirty_rate);
  o += "# HELP hymig_drain_running 1 while this daemon drains its node.\n# TYPE hymig_drain_running gauge\n";
  o += fmt::format("hymig_drain_running {}\n", draining ? 1 : 0);
  return o;
}

struct MetricsEndpoint::Impl {
  std::function<std::string()> render;
  MHD_Daemon* daemon = nullptr;
  UniqueFd socket;

  static MHD_Result answer(void* cls, MHD_Connection* c, const char* url, const char* method, const char*, const char*,
                           size_t* upload_size, void** state) {
    auto* self = static_cast<Impl*>(cls);
    if (*state == nullptr) {  // headers only so far: answer once the request is whole
      *state = self;
      return MHD_YES;
    }
    if (*upload_size) {  // a body is not ours to read
      *upload_size = 0;
      return MHD_YES;
    }
    const bool ok = std::strcmp(method, "GET") == 0 && std::strcmp(url, "/metrics") == 0;
    std::string body = ok ? self->render() : "GET /metrics\n";
    MHD_Response* r = MHD_create_response_from_buffer(body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
    if (ok) MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    const MHD_Result q = MHD_queue_response(c, ok ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
    MHD_destroy_response(r);
    return q;
  }
};

MetricsEndpoint::MetricsEndpoint(const std::string& address, std::function<std::string()> render)
    : impl_(std::make_unique<Impl>()) {
  impl_->render = std::move(render);
  const auto addrs = resolve_host_port(address, SOCK_STREAM, true);
  const SocketAddress& a = addrs.front();
  impl_->socket.reset(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!impl_->socket) throw_errno("--metrics " + address + ": socket");
  const int one = 1;
  ::setsockopt(impl_->socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(impl_->socket.get(), a.get(), a.length) != 0) throw_errno("--metrics: cannot listen on " + address);
  if (::listen(impl_->socket.get(), 16) != 0) throw_errno("--metrics " + address + ": listen");
  SocketAddress bound;
  bound.length = sizeof bound.storage;
  ::getsockname(impl_->socket.get(), bound.get(), &bound.length);
  address_ = format_address(bound);
  // One thread, a handful of connections, short timeouts and small requests: a scraper's needs.
  impl_->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, nullptr, nullptr, &Impl::answer,
                                   impl_.get(), MHD_OPTION_LISTEN_SOCKET, impl_->socket.get(), MHD_OPTION_CONNECTION_LIMIT,
                                   16u, MHD_OPTION_CONNECTION_TIMEOUT, 5u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, size_t{65536},
                                   MHD_OPTION_END);
  if (!impl_->daemon) throw Error(ErrorKind::io, "--metrics: cannot start the HTTP endpoint on " + address);
  (void)impl_->socket.release();  // the daemon closes it when it stops
}

MetricsEndpoint::~MetricsEndpoint() {
  if (impl_->daemon) MHD_stop_daemon(impl_->daemon);
}

}  // namespace hymig::cli
