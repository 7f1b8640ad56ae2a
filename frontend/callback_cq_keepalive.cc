#include "frontend/callback_cq_keepalive.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>

namespace rusd::frontend {

CallbackCqKeepAlive::CallbackCqKeepAlive(grpc::Server& server, std::chrono::milliseconds interval)
    : server_(server), interval_(interval) {}

CallbackCqKeepAlive::~CallbackCqKeepAlive() { Stop(); }

void CallbackCqKeepAlive::Start() {
  thread_ = std::thread([this] { Run(); });
}

void CallbackCqKeepAlive::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t CallbackCqKeepAlive::completed() const {
  std::lock_guard lock(mu_);
  return completed_;
}

void CallbackCqKeepAlive::Run() {
  grpc::GenericStub stub(server_.InProcessChannel(grpc::ChannelArguments()));
  // One call at a time: its state lives here until its callback ran.
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request;
    grpc::ByteBuffer response;
  };
  std::unique_ptr<Call> call;
  std::unique_lock lock(mu_);
  while (true) {
    // Wait for the previous call (it completes within µs unless the server is stopping).
    cv_.wait(lock, [&] { return !in_flight_; });
    if (stop_) break;
    call = std::make_unique<Call>();
    grpc::Slice empty;  // a valid (empty) message: a ByteBuffer without one is API misuse
    call->request = grpc::ByteBuffer(&empty, 1);
    in_flight_ = true;
    lock.unlock();
    stub.UnaryCall(&call->context, kCallbackCqKeepAliveMethod, grpc::StubOptions(), &call->request,
                   &call->response, [this](grpc::Status) {
                     // Notified under the lock: once Run sees in_flight_ false it may
                     // return and `this` go; we touch nothing of it after unlocking.
                     std::lock_guard l(mu_);
                     in_flight_ = false;
                     ++completed_;
                     cv_.notify_all();
                   });
    lock.lock();
    cv_.wait_for(lock, interval_, [&] { return stop_; });
  }
}

}  // namespace rusd::frontend
