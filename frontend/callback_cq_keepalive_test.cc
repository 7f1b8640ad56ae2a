// CallbackCqKeepAlive against a real in-process gRPC C++ server: its calls keep coming, and
// a callback call after an idle second completes at once (without it gRPC 1.51's callback
// threads all nap 100 ms after a second without events: ~70 ms here every round).
#include "frontend/callback_cq_keepalive.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace rusd::frontend {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Answers every call (any method) with an empty message and OK; counts the keep-alive's.
class EchoService final : public grpc::CallbackGenericService {
 public:
  std::atomic<int> keepalive_calls{0};

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    if (ctx->method() == kCallbackCqKeepAliveMethod) keepalive_calls.fetch_add(1);
    return new Reactor();
  }

 private:
  class Reactor final : public grpc::ServerGenericBidiReactor {
   public:
    Reactor() { StartRead(&in_); }
    void OnReadDone(bool) override { Finish(grpc::Status::OK); }
    void OnDone() override { delete this; }

   private:
    grpc::ByteBuffer in_;
  };
};

// One unary callback call on `stub`; returns how long it took to complete.
Clock::duration TimedCall(grpc::GenericStub& stub) {
  grpc::ClientContext context;
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  const Clock::time_point start = Clock::now();
  stub.UnaryCall(&context, "/test.Echo/Call", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(s); });
  const grpc::Status status = done.get_future().get();
  const Clock::duration took = Clock::now() - start;
  EXPECT_TRUE(status.ok()) << status.error_message();
  return took;
}

TEST(CallbackCqKeepAliveTest, CallbackCallAfterAnIdleSecondIsNotDelayed) {
  EchoService service;
  grpc::ServerBuilder builder;
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  grpc::GenericStub stub(server->InProcessChannel(grpc::ChannelArguments()));

  CallbackCqKeepAlive keepalive(*server, 250ms);
  keepalive.Start();
  std::vector<Clock::duration> took;
  for (int round = 0; round < 5; ++round) {
    // A burst (every callback thread busy), then an idle pause ending inside the window in
    // which, without the keep-alive, every callback thread naps.
    std::vector<std::thread> burst;
    for (int i = 0; i < 4; ++i) burst.emplace_back([&] { TimedCall(stub); });
    for (auto& t : burst) t.join();
    std::this_thread::sleep_for(1030ms);
    took.push_back(TimedCall(stub));
  }
  std::sort(took.begin(), took.end());
  EXPECT_LT(took[took.size() / 2], 25ms)
      << "median " << std::chrono::duration_cast<std::chrono::microseconds>(took[2]).count()
      << " µs";
  // ~4 calls a second over the ~5 s above.
  EXPECT_GE(service.keepalive_calls.load(), 10);
  EXPECT_GE(keepalive.completed(), 10u);

  const Clock::time_point stop_start = Clock::now();
  keepalive.Stop();
  EXPECT_LT(Clock::now() - stop_start, 1s);
  const int after_stop = service.keepalive_calls.load();
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(service.keepalive_calls.load(), after_stop);  // no call after Stop
  server->Shutdown(std::chrono::system_clock::now() + 1s);
}

}  // namespace
}  // namespace rusd::frontend
