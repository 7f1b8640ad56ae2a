// rusd-frontend: etcd's client-facing gRPC (KV, Maintenance.Status) and HTTP endpoints on
// --listen-client-urls, in front of the node's rings. Started by the supervisor with the
// arguments of common/component_flags.h; holds no durable state.
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/service_type.h>
#include <grpcpp/resource_quota.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <climits>
#include <cstdio>
#include <optional>

#include "common/component_flags.h"
#include "common/logging.h"
#include "frontend/client_listener.h"
#include "frontend/connection_cork.h"
#include "frontend/gateway.h"
#include "frontend/callback_cq_keepalive.h"
#include "frontend/health_probe.h"
#include "frontend/http_handler.h"
#include "common/exit_codes.h"
#include "frontend/cluster_service.h"
#include "frontend/kv_service.h"
#include "frontend/metrics_interceptor.h"
#include "frontend/metrics_page.h"
#include "frontend/native_grpc/native_grpc_server.h"
#include "frontend/lease_service.h"
#include "frontend/lease_gateway.h"
#include "frontend/lease_forwarder.h"
#include "frontend/lock_gateway.h"
#include "frontend/election_service.h"
#include "frontend/lock_service.h"
#include "frontend/ring_client.h"
#include "frontend/watch_hub.h"
#include "frontend/watch_service.h"
#include "ipc/component_context.h"

namespace {

// Start-up failures a restart cannot fix (a client port in use, a bad URL or flag) exit with
// rusd::kExitConfigError: the supervisor then stops the node instead of restarting into it
// (a client probing the port would otherwise reach whatever process holds it).
constexpr int kExitConfig = rusd::kExitConfigError;

// etcd: the gRPC receive limit is the request limit plus this much room for the envelope.
constexpr uint64_t kGrpcOverheadBytes = 512 * 1024;

int Run(int argc, char** argv) {
  using namespace rusd;
  // Block the stop signals before any thread starts, so only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex gRPC takes also updates a
  // global lock-order graph (deadlock detection): several per cent of the frontend's CPU under
  // load, measured with perf. It only reports, never prevents; switch it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  Result<ComponentFlags> flags = ComponentFlags::Parse(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "rusd-frontend: %s\n", flags.status().message().c_str());
    return kExitConfig;
  }
  Status st = SetUpLogging("frontend", flags->log_level, flags->log_format);
  if (!st.ok()) {
    std::fprintf(stderr, "rusd-frontend: %s\n", st.message().c_str());
    return kExitConfig;
  }

  // Bind first: a port in use is the most common start-up failure; say so and exit.
  auto listener = frontend::ClientListener::Bind(flags->listen_client_urls);
  if (!listener.ok()) {
    spdlog::error("{}", listener.status().message());
    return kExitConfig;
  }

  auto ctx = ipc::ComponentContext::Start(*flags, ipc::Component::kFrontend);
  if (!ctx.ok()) {
    spdlog::error("cannot open the segment: {}", ctx.status().ToString());
    return 1;
  }

  frontend::ConnectionCork grpc_connections;
  // With --experimental-native-grpc (the default; nothing of the native server exists with
  // --experimental-native-grpc=false).
  std::optional<frontend::native_grpc::NativeGrpcBatchFlush> native_flush;  // before the ring
  frontend::RingClientOptions ring_options;
  ring_options.cork = &grpc_connections;  // see connection_cork.h
  if (flags->experimental_native_grpc) ring_options.batch_hook = &native_flush.emplace();
  ring_options.member_id = flags->member_id;
  ring_options.own_epoch = (*ctx)->epoch();
  ring_options.request_timeout =
      std::chrono::milliseconds(5000 + 2 * static_cast<uint64_t>(flags->election_timeout_ms));
  frontend::RingClient ring((*ctx)->segment(), ring_options);
  ring.Start();

  frontend::KvServiceOptions kv_options;
  kv_options.member_id = flags->member_id;
  kv_options.max_request_bytes = flags->max_request_bytes;
  kv_options.max_txn_ops = flags->max_txn_ops;
  kv_options.received_bytes = &(*ctx)->segment().metrics().at(ipc::Metric::kGrpcReceivedBytes);
  kv_options.grpc_metrics = &(*ctx)->segment().metrics();
  kv_options.cork = &grpc_connections;
  std::unique_ptr<grpc::Service> kv = frontend::MakeKvService(ring, kv_options);
  std::unique_ptr<grpc::Service> maintenance =
      frontend::MakeMaintenanceService(ring, flags->member_id, flags->cluster_id);
  std::unique_ptr<grpc::Service> cluster =
      frontend::MakeClusterService(ring, flags->member_id, flags->cluster_id);

  auto progress_interval =
      frontend::ParseProgressNotifyInterval(flags->watch_progress_notify_interval);
  if (!progress_interval.ok()) {
    spdlog::error("--watch-progress-notify-interval: {}", progress_interval.status().message());
    return kExitConfig;
  }
  frontend::WatchHubOptions watch_options;
  watch_options.cluster_id = flags->cluster_id;
  watch_options.member_id = flags->member_id;
  watch_options.max_response_bytes = flags->max_request_bytes + kGrpcOverheadBytes;
  watch_options.progress_interval = *progress_interval;
  watch_options.events_wanted = &(*ctx)->segment().counter(ipc::Counter::kWatchEventsWanted);
  std::unique_ptr<frontend::WatchStore> watch_store = frontend::MakeRingWatchStore(ring);
  frontend::WatchHub watch_hub(*watch_store, watch_options);
  frontend::WatchEventsPump watch_pump((*ctx)->segment(), watch_hub);  // before Start: see header
  watch_hub.Start();
  watch_pump.Start();
  std::unique_ptr<grpc::Service> watch = frontend::MakeWatchService(
      watch_hub, watch_options.max_queued_bytes, &ring,
      [&ring] { return ring.leader().leader_id != 0; },
      std::chrono::milliseconds(flags->election_timeout_ms));

  grpc::ServerBuilder builder;
  builder.RegisterService(kv.get());
  builder.RegisterService(watch.get());
  builder.RegisterService(maintenance.get());
  builder.RegisterService(cluster.get());
  frontend::LeaseForwarderOptions forward_options;  // keep-alives of followers to the leader
  forward_options.member_id = flags->member_id;
  forward_options.request_timeout = ring_options.request_timeout;
  forward_options.attempt_timeout =
      std::chrono::milliseconds(std::max<uint64_t>(500, flags->election_timeout_ms));
  frontend::LeaseForwarder lease_forwarder(ring, forward_options);
  std::unique_ptr<grpc::Service> lease = frontend::MakeLeaseService(ring, lease_forwarder,
                                                                     &(*ctx)->segment().metrics());
  builder.RegisterService(lease.get());
  std::unique_ptr<grpc::Service> lease_forward = frontend::MakeLeaseForwardService(ring);
  builder.RegisterService(lease_forward.get());
  frontend::KvDispatcher concurrency_dispatcher(ring, kv_options);  // v3lock, v3election
  std::unique_ptr<grpc::Service> lock =
      frontend::MakeLockService(concurrency_dispatcher, &watch_hub);
  std::unique_ptr<grpc::Service> election =
      frontend::MakeElectionService(concurrency_dispatcher, &watch_hub);
  builder.RegisterService(lock.get());
  builder.RegisterService(election.get());
  uint64_t max_recv = flags->max_request_bytes + kGrpcOverheadBytes;
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<uint64_t>(max_recv, INT_MAX)));
  builder.SetMaxSendMessageSize(INT_MAX);
  // Two cores: keep gRPC's own thread pool small.
  grpc::ResourceQuota quota("rusd-frontend");
  quota.SetMaxThreads(4);
  builder.SetResourceQuota(quota);
  // etcd accepts client keepalive pings every 5 s; clientv3/etcdctl ping often, and a
  // GOAWAY for "too many pings" would break them. Never count ping strikes.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 2 * 60 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, INT_MAX);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  // KV and LeaseKeepAlive (the hot paths) count their own calls (kv_options.grpc_metrics,
  // MakeLeaseService): no interceptor there.
  interceptors.push_back(frontend::MakeGrpcMetricsInterceptor(
      (*ctx)->segment().metrics(),
      {"etcdserverpb.KV", "etcdserverpb.Lease/LeaseKeepAlive",
       frontend::kCallbackCqKeepAliveMethod + 1}));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    spdlog::error("the gRPC server did not start");
    return 1;
  }

  // gRPC's callback threads must not all nap after an idle second (callback_cq_keepalive.h).
  frontend::CallbackCqKeepAlive callback_cq_keepalive(*server);
  callback_cq_keepalive.Start();

  frontend::RingHealthProbe probe(ring);
  frontend::KvDispatcher gateway_dispatcher(ring, kv_options);
  frontend::KvGateway kv_gateway(gateway_dispatcher);
  frontend::LockGateway lock_gateway(gateway_dispatcher, &kv_gateway, &watch_hub);
  // leases (to the leader), locks/elections, then KV
  frontend::LeaseGateway gateway(ring, &lock_gateway, &lease_forwarder);
  frontend::HttpHandler http(
      probe, frontend::HttpVersions{RUSD_ETCD_SERVER_VERSION, RUSD_ETCD_CLUSTER_VERSION},
      &gateway);
  frontend::SegmentMetricsPage metrics_page((*ctx)->segment(), RUSD_ETCD_SERVER_VERSION);
  http.set_metrics_page(&metrics_page);
  // --experimental-native-grpc: client gRPC connections go to rusd's own HTTP/2 server
  // (frontend/native_grpc/: KV natively, the rest forwarded to `server` in process).
  // Constructed only with the flag: the flag-off path is the gRPC C++ one, unchanged.
  std::optional<frontend::KvDispatcher> native_dispatcher;
  std::optional<frontend::native_grpc::NativeGrpcServer> native;
  if (flags->experimental_native_grpc) {
    native_dispatcher.emplace(ring, kv_options);
    frontend::native_grpc::NativeGrpcServerOptions native_options;
    native_options.max_receive_message_bytes =
        static_cast<size_t>(flags->max_request_bytes + kGrpcOverheadBytes);
    native_options.received_bytes = kv_options.received_bytes;
    native_options.grpc_metrics = kv_options.grpc_metrics;
    native_options.forward_to = server.get();  // every method but KV, in process
    native.emplace(*native_dispatcher, *native_flush, native_options);
    st = native->Start();
    if (!st.ok()) {
      spdlog::error("{}", st.message());
      return 1;
    }
    spdlog::info("--experimental-native-grpc: gRPC clients are served by rusd's native server "
                 "(KV natively, every other method forwarded in process to gRPC C++)");
  }
  (*listener)->Start(server.get(), &http, &grpc_connections,
                     native ? &*native : nullptr);
  spdlog::info("serving clients on {} (member {:x}, epoch {})",
               fmt::join(flags->listen_client_urls, ","), flags->member_id, (*ctx)->epoch());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}, shutting down", sig);
  (*listener)->Stop();
  watch_pump.Stop();  // no more events: a stopping stored is not a gap to catch up from
  ring.Stop();  // finishes every pending call ("server stopped"), so Shutdown need not wait
  // GOAWAY, close the native connections, cancel their forwarded calls and wait for them:
  // before server->Shutdown, which would otherwise wait for those calls.
  if (native) native->Shutdown();
  lease_forwarder.Stop();  // cancels keep-alives forwarded to the leader
  callback_cq_keepalive.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
