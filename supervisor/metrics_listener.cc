#include "supervisor/metrics_listener.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <netdb.h>
#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>

#include "ipc/metrics_collector.h"
#include "ipc/segment.h"
#include "supervisor/metrics_tcp_relay.h"
#include "common/url.h"

namespace rusd::supervisor {
namespace {

constexpr int kIoTimeoutMs = 3000;
constexpr size_t kMaxResponseBytes = 64 * 1024 * 1024;
// Two seconds: twenty missed beats. Long enough that CPU starvation on a loaded two-core
// machine does not flap readiness, far below the 5 s after which the supervisor kills it.
constexpr std::chrono::nanoseconds kReadyBeatAge = std::chrono::seconds(2);

void SetTimeouts(int fd) {
  timeval tv{kIoTimeoutMs / 1000, (kIoTimeoutMs % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

Result<int> Connect(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return Status::InvalidArgument("resolve " + host + ":" + port + ": " + gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    SetTimeouts(fd);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      ::freeaddrinfo(res);
      return fd;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return Status::Unavailable("connect to " + host + ":" + port + ": " + last_error);
}

// One HTTP/1.1 response with Go's text/plain or a JSON body; the connection closes after it
// (probes are rare; keeping it simple beats keep-alive bookkeeping).
std::string Response(int code, const char* reason, const char* content_type,
                     const std::string& body, const char* extra_headers = "") {
  std::string out = "HTTP/1.1 ";
  out.append(std::to_string(code)).append(" ").append(reason);
  out.append("\r\n").append(extra_headers).append("Content-Type: ").append(content_type);
  out.append("\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ");
  out.append(std::to_string(body.size())).append("\r\nConnection: close\r\n\r\n").append(body);
  return out;
}

bool HasQueryKey(const std::string& query, const std::string& key) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    std::string part = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    if (part == key || part.rfind(key + "=", 0) == 0) return true;
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return false;
}

}  // namespace

struct MetricsListener::Impl {
  ipc::Segment* segment = nullptr;
  std::string backend_host, backend_port;
  std::shared_ptr<ipc::SegmentCollector> collector;
  std::unique_ptr<prometheus::Exposer> exposer;
  std::vector<int> ports;          // civetweb's (the internal relay target last, if any)
  std::unique_ptr<TcpRelay> relay;  // IPv6 URLs, when civetweb has no IPv6

  // civetweb's begin_request callback receives only the connection, and Exposer keeps its
  // CivetServer (whose user data civetweb would hand back) private: find the listener by the
  // port the request arrived on. Guarded by RegistryMutex().
  static std::map<int, Impl*>& Registry() {
    static std::map<int, Impl*> registry;
    return registry;
  }
  static std::mutex& RegistryMutex() {
    static std::mutex mu;
    return mu;
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(RegistryMutex());
      for (int p : ports) Registry().erase(p);
    }
    relay.reset();
    exposer.reset();  // joins civetweb's threads
  }

  static int BeginRequest(mg_connection* conn) {
    const mg_request_info* info = mg_get_request_info(conn);
    if (info == nullptr || info->local_uri == nullptr) return 0;
    Impl* self = nullptr;
    {
      std::lock_guard<std::mutex> lock(RegistryMutex());
      auto it = Registry().find(info->server_port);
      if (it != Registry().end()) self = it->second;
    }
    if (self == nullptr) return 0;
    const std::string path = info->local_uri;
    if (path == "/metrics") return 0;  // the Exposer's handler
    const std::string method = info->request_method ? info->request_method : "";
    const std::string query = info->query_string ? info->query_string : "";
    std::string response = self->Answer(method, path, query);
    mg_write(conn, response.data(), response.size());
    const auto sp = response.find(' ');
    return sp == std::string::npos ? 500 : std::atoi(response.c_str() + sp + 1);
  }

  std::string Answer(const std::string& method, const std::string& path, const std::string& query) {
    const bool livez = path == "/livez" || path.rfind("/livez/", 0) == 0;
    const bool readyz = path == "/readyz" || path.rfind("/readyz/", 0) == 0;
    const bool health = path == "/health";
    if (!livez && !readyz && !health && path != "/version") {
      return Response(404, "Not Found", "text/plain; charset=utf-8", "404 page not found\n");
    }
    if (method != "GET") {  // as the frontend (and etcd's handlers) answer
      return Response(405, "Method Not Allowed", "text/plain; charset=utf-8",
                      "Method Not Allowed\n", "Allow: GET\r\n");
    }
    const std::string target = query.empty() ? path : path + "?" + query;
    if (livez) return Livez(query);
    if (readyz) {
      std::string not_ready = NotReadyReason();
      if (!not_ready.empty()) {
        return Response(503, "Service Unavailable", "text/plain; charset=utf-8",
                        "[-]" + not_ready + "\n");
      }
    }
    std::string relayed = Relay(method, target);
    if (relayed.rfind("HTTP/", 0) == 0) return relayed;
    // The frontend is down or restarting: the node cannot serve, say so as etcd does.
    if (health) {  // Go's http.Error: the JSON, then a newline
      std::string body = "{\"health\":\"false\",\"reason\":\"";
      for (char ch : relayed) {
        if (ch == '"' || ch == '\\') body.push_back('\\');
        if (static_cast<unsigned char>(ch) >= 0x20) body.push_back(ch);
      }
      body.append("\"}\n");
      return Response(503, "Service Unavailable", "text/plain; charset=utf-8", body);
    }
    return Response(503, "Service Unavailable", "text/plain; charset=utf-8", relayed + "\n");
  }

  std::string Livez(const std::string& query) {
    std::string detail;
    for (int c = 0; c < ipc::kComponentCount; ++c) {
      const auto comp = static_cast<ipc::Component>(c);
      const bool running = segment->component(comp).pid.load(std::memory_order_relaxed) != 0;
      detail.append("[+]").append(ipc::ComponentName(comp));
      detail.append(running ? " ok\n" : " restarting (the supervisor restarts it)\n");
    }
    return Response(200, "OK", "text/plain; charset=utf-8",
                     (HasQueryKey(query, "verbose") ? detail : std::string()) + "ok\n");
  }

  // Empty when the node can serve as far as the supervisor can tell: every component runs
  // and its heartbeat moved within kReadyBeatAge (the supervisor samples beats every
  // 100 ms; a stopped or wedged process stops beating long before it is killed as hung).
  std::string NotReadyReason() {
    const uint64_t now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                   std::chrono::steady_clock::now().time_since_epoch())
                                                   .count());
    for (int c = 0; c < ipc::kComponentCount; ++c) {
      const auto comp = static_cast<ipc::Component>(c);
      const std::string name = ipc::ComponentName(comp);
      if (segment->component(comp).pid.load(std::memory_order_relaxed) == 0) {
        return name + " failed: not running (restarting)";
      }
      const ipc::ComponentStats& st = segment->metrics().components[c];
      const uint64_t beat = st.last_beat_mono_ns.load(std::memory_order_relaxed);
      if (beat < st.start_mono_ns.load(std::memory_order_relaxed)) {
        return name + " failed: starting";
      }
      if (now > beat && now - beat > kReadyBeatAge.count()) {
        return name + " failed: heartbeat stalled for " + std::to_string((now - beat) / 1000000) +
               "ms";
      }
    }
    if (segment->metrics().Get(ipc::Metric::kHasLeader) == 0) return "raft failed: no leader";
    return {};
  }

  // The frontend's whole response, or (not starting with "HTTP/") why there is none.
  std::string Relay(const std::string& method, const std::string& target) {
    auto upstream = Connect(backend_host, backend_port);
    if (!upstream.ok()) return upstream.status().message();
    std::string forward = method + " " + target + " HTTP/1.1\r\nHost: " + backend_host + ":" +
                          backend_port + "\r\nConnection: close\r\n\r\n";
    std::string response;
    if (WriteAll(*upstream, forward)) {
      char buf[4096];
      while (response.size() < kMaxResponseBytes) {
        ssize_t n = ::recv(*upstream, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        response.append(buf, static_cast<size_t>(n));
      }
    }
    ::close(*upstream);
    if (response.rfind("HTTP/", 0) != 0) return "frontend closed the connection";
    return response;
  }
};

MetricsListener::MetricsListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsListener::~MetricsListener() = default;

Result<std::unique_ptr<MetricsListener>> MetricsListener::Start(
    const MetricsListenerOptions& options, ipc::Segment& segment) {
  auto impl = std::make_unique<Impl>();
  impl->segment = &segment;
  auto backend = ParseUrl(options.client_url);
  if (!backend.ok()) return backend.status();
  if (backend->scheme != "http") {
    return Status::Unimplemented("--listen-metrics-urls needs an http client URL to relay to");
  }
  impl->backend_host = backend->host;
  impl->backend_port = backend->port;
  // A frontend listening on every interface is reached on loopback.
  if (impl->backend_host.empty() || impl->backend_host == "0.0.0.0") impl->backend_host = "127.0.0.1";
  if (impl->backend_host == "::") impl->backend_host = "::1";

  // civetweb's listening_ports: "host:port" or "[v6]:port", comma separated.
  std::string listening;
  std::vector<std::pair<std::string, std::string>> relayed;  // IPv6 (host, port)
  for (const auto& url : options.listen_urls) {
    auto parsed = ParseUrl(url);
    if (!parsed.ok()) return parsed.status();
    if (parsed->scheme != "http") {
      return Status::Unimplemented("--listen-metrics-urls " + url + ": only http is implemented");
    }
    std::string host = parsed->host == "localhost" ? "127.0.0.1" : parsed->host;
    if (host.find(':') != std::string::npos) {
      if (mg_check_feature(8) == 0) {  // 8: IPv6; Debian builds civetweb without it
        relayed.emplace_back(host, parsed->port);
        continue;
      }
      host = "[" + host + "]";
    }
    if (!listening.empty()) listening += ",";
    listening += (host.empty() ? std::string() : host + ":") + parsed->port;
  }
  if (!relayed.empty()) {
    // IPv6 addresses reach the Exposer through a relay to an internal loopback port.
    if (!listening.empty()) listening += ",";
    listening += "127.0.0.1:0";
  }
  if (listening.empty()) return Status::InvalidArgument("--listen-metrics-urls: no URL");

  impl->collector = std::make_shared<ipc::SegmentCollector>(
      segment, ipc::MetricsCollectorOptions{options.server_version});
  CivetCallbacks callbacks;  // civetweb copies it
  callbacks.begin_request = &Impl::BeginRequest;
  try {
    // Options as Exposer(bind_address) sets them, plus short timeouts: a stuck scraper must
    // not hold one of the two threads.
    impl->exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", listening, "num_threads", "4",
                                 "request_timeout_ms", std::to_string(kIoTimeoutMs)},
        &callbacks);
  } catch (const std::exception& e) {
    return Status::Unavailable("listen on " + listening + ": " + e.what());
  }
  impl->exposer->RegisterCollectable(impl->collector);
  impl->ports = impl->exposer->GetListeningPorts();
  {
    std::lock_guard<std::mutex> lock(Impl::RegistryMutex());
    for (int p : impl->ports) Impl::Registry()[p] = impl.get();
  }
  if (!relayed.empty()) {
    if (impl->ports.empty()) return Status::Internal("the metrics Exposer bound no port");
    auto relay = TcpRelay::Start(relayed, impl->ports.back());  // the internal port is last
    if (!relay.ok()) return relay.status();
    impl->relay = std::move(*relay);
  }
  return std::unique_ptr<MetricsListener>(new MetricsListener(std::move(impl)));
}

}  // namespace rusd::supervisor
