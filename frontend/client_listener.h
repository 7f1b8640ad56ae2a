// ClientListener: the sockets of --listen-client-urls, shared by gRPC and HTTP/1.1 as in etcd.
//
// It binds every URL itself (http://host:port; https:// and unix:// are refused with a clear
// error: TLS is a later issue), accepts connections on one thread, and gives each new
// connection a short-lived thread that peeks at its first three bytes: "PRI" (the HTTP/2
// client preface gRPC clients send at once) hands the socket to the gRPC server
// (grpc::AddInsecureChannelFromFd); anything else is served as HTTP/1.1 with keep-alive on
// that thread until the peer closes, goes idle, or sends garbage (400, then close).
//
// Thread safety: Bind, Start and Stop from one (the main) thread. Stop closes the listening
// sockets, shuts down HTTP connections still open and waits for their threads; call it before
// shutting down the grpc::Server and before destroying the HttpHandler.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace grpc {
class Server;
}

namespace rusd::frontend {

class ConnectionCork;
class HttpHandler;
namespace native_grpc {
class NativeGrpcServer;
}

class ClientListener {
 public:
  // Binds and listens on every URL. A URL is parsed by common/url.h (etcd's rules and
  // error texts); https://, unixs:// and unix:// give InvalidArgument saying rusd does not
  // serve them yet. Fails (with the URL and the OS error, e.g. "address already in use")
  // if any cannot be bound.
  static Result<std::unique_ptr<ClientListener>> Bind(const std::vector<std::string>& urls);
  ~ClientListener();

  // The ports actually bound, in URL order (useful with port 0 in tests).
  std::vector<uint16_t> ports() const;

  // Starts accepting. `server` must be started; both must outlive Stop(). With `grpc_connections`
  // (which must outlive Stop()) every connection handed to gRPC is tracked there. With
  // `native` (--experimental-native-grpc; started, must outlive Stop()) gRPC connections go
  // to rusd's own server instead of `server`.
  void Start(grpc::Server* server, HttpHandler* handler,
             ConnectionCork* grpc_connections = nullptr,
             native_grpc::NativeGrpcServer* native = nullptr);
  void Stop();

 private:
  struct Impl;
  explicit ClientListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rusd::frontend
