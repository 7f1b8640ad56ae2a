// The JSON plumbing every gateway endpoint shares (KV, lease, lock, election): proto3 JSON in
// (unknown fields ignored, as grpc-gateway does), proto3 JSON out with the proto field names,
// and grpc-gateway's error body {"error": msg, "code": grpc code, "message": msg} with the
// HTTP status grpc-gateway gives that code.
#pragma once

#include <future>
#include <memory>
#include <string>
#include <utility>

#include "common/status.h"
#include "frontend/http_handler.h"
#include "frontend/ring_client.h"

namespace google::protobuf {
class Message;
}

namespace rusd::frontend {

HttpResponse JsonErrorResponse(const Status& st);
// An empty body leaves `request` as it is (all defaults).
Status ParseJsonRequest(const std::string& body, google::protobuf::Message* request);
HttpResponse JsonMessageResponse(const google::protobuf::Message& response);

// Runs `send(callback)` and blocks until the callback ran: the gateway serves on the HTTP
// connection's own thread, bounded by the ring client's request timeout.
template <typename Send>
std::pair<Status, std::string> AwaitReply(Send&& send) {
  auto promise = std::make_shared<std::promise<std::pair<Status, std::string>>>();
  auto future = promise->get_future();
  RequestCallback done = [promise](const Status& st, std::string&& payload) {
    promise->set_value({st, std::move(payload)});
  };
  send(std::move(done));
  return future.get();
}

// The common endpoint: parse `body` into a Request, send its bytes with `send(bytes,
// callback)`, parse the reply as a Response and render it.
template <typename Request, typename Response, typename Send>
HttpResponse JsonCall(const std::string& body, Request& request, Send&& send) {
  if (Status st = ParseJsonRequest(body, &request); !st.ok()) return JsonErrorResponse(st);
  auto [st, payload] = AwaitReply(std::forward<Send>(send));
  if (!st.ok()) return JsonErrorResponse(st);
  Response response;
  if (!response.ParseFromString(payload)) {
    return JsonErrorResponse(Status::Internal("malformed response from the store"));
  }
  return JsonMessageResponse(response);
}

}  // namespace rusd::frontend
