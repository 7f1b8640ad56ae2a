// TcpRelay: accepts TCP connections on some addresses and pipes each, both ways, to a
// loopback port. The metrics URL uses it for IPv6 addresses: Debian's civetweb (under
// prometheus-cpp's Exposer) is built without IPv6, so the Exposer listens on an internal
// 127.0.0.1 port and the relay carries [::1]:2381 (say) to it.
//
// One thread serves one connection at a time (probes and scrapes are rare and short), with
// 3 s socket timeouts so a stuck peer cannot hold it. Sockets are close-on-exec.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace rusd::supervisor {

class TcpRelay {
 public:
  // Binds every (host, port) and starts relaying to 127.0.0.1:target_port.
  static Result<std::unique_ptr<TcpRelay>> Start(
      const std::vector<std::pair<std::string, std::string>>& listen, int target_port);
  ~TcpRelay();  // stops and joins the thread, closes the sockets
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  struct Impl;

 private:
  explicit TcpRelay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rusd::supervisor
