#include "bench/stream_tool.hpp"

#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "core/units.hpp"

namespace hymig::bench {

std::optional<StreamArgs> parse_stream_args(int argc, char** argv, const std::string& tool, const std::string& about) {
  namespace po = boost::program_options;
  po::options_description opts(about + "\n\n  " + tool + " --listen HOST:PORT                 receive once, then exit\n  " + tool +
                               " --connect HOST:PORT --bytes SIZE   send SIZE bytes (K/M/G = 2^10/2^20/2^30)\n\n"
                               "Each side prints {\"role\",\"bytes\",\"complete\",\"seconds\",\"gbps\"} as one JSON line.\n"
                               "Options");
  std::string listen, connect, bytes;
  opts.add_options()                                                                         //
      ("help,h", "print this help")                                                          //
      ("listen", po::value(&listen), "receiver: HOST:PORT to listen on (PORT 0 picks one)")  //
      ("connect", po::value(&connect), "sender: HOST:PORT of the receiver (retried for 5 s)")  //
      ("bytes", po::value(&bytes),
       "sender: how much to send, e.g. 4G; receiver (optional): populate that much memory before listening")  //
      ("max-seconds", po::value<double>()->default_value(0),
       "sender: stop after this long; the receiver reports what arrived (0: no cap)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::usage, std::string(e.what()) + " (see --help)");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return std::nullopt;
  }
  const bool l = vm.count("listen"), c = vm.count("connect");
  if (l == c) throw Error(ErrorKind::usage, "give exactly one of --listen or --connect (see --help)");
  if (c && !vm.count("bytes")) throw Error(ErrorKind::usage, "--connect needs --bytes SIZE, e.g. --bytes 4G");
  StreamArgs a;
  a.listen = l;
  a.where = l ? listen : connect;
  split_host_port(a.where);  // malformed text is a usage error before anything starts
  if (vm.count("bytes")) a.bytes = parse_size(bytes, "--bytes");
  a.max_seconds = vm["max-seconds"].as<double>();
  if (a.max_seconds < 0) throw Error(ErrorKind::usage, "--max-seconds must be 0 (no cap) or positive");
  return a;
}

LengthHeader encode_length_header(std::uint64_t bytes) {
  LengthHeader h;
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<std::byte>(bytes >> (8 * i));
  return h;
}

std::uint64_t decode_length_header(const LengthHeader& h, std::uint64_t expect, const std::string& tool) {
  std::uint64_t size = 0;
  for (std::size_t i = h.size(); i-- > 0;) size = (size << 8) | std::to_integer<std::uint64_t>(h[i]);
  if (size == 0 || size > (std::uint64_t{1} << 46))
    throw Error(ErrorKind::protocol, "the sender announced " + std::to_string(size) +
                                         " bytes; expected 1 byte to 64 TiB (is it a " + tool + " sender?)");
  if (expect && size != expect)
    throw Error(ErrorKind::protocol, "the sender announced " + std::to_string(size) + " bytes; --bytes said " +
                                         std::to_string(expect));
  return size;
}

std::uint64_t send_capped(std::uint64_t size, double max_seconds, std::uint64_t slice,
                          std::chrono::steady_clock::time_point start,
                          const std::function<void(std::uint64_t, std::uint64_t)>& send) {
  std::uint64_t sent = 0;
  while (sent < size) {
    if (max_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > max_seconds)
      break;
    const std::uint64_t n = max_seconds > 0 ? std::min(slice, size - sent) : size - sent;
    send(sent, n);
    sent += n;
  }
  return sent;
}

namespace {
double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}
double cpu_mark = -1;
}  // namespace

void mark_cpu_start() { cpu_mark = process_cpu_seconds(); }

void print_stream_report(const char* role, std::uint64_t bytes, std::chrono::steady_clock::duration elapsed,
                         bool complete, std::optional<std::chrono::steady_clock::duration> prefault) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  nlohmann::json j = {{"role", role},
                      {"bytes", bytes},
                      {"complete", complete},
                      {"seconds", seconds},
                      {"gbps", seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e9 : 0.0}};
  if (prefault) j["prefault_seconds"] = std::chrono::duration<double>(*prefault).count();
  if (cpu_mark >= 0) j["cpu_s"] = process_cpu_seconds() - cpu_mark;
  std::cout << j.dump() << std::endl;
}

int stream_tool_main(const std::string& tool, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::cerr << tool << ": " << e.what() << "\n";
    return e.kind() == ErrorKind::usage ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << tool << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace hymig::bench
