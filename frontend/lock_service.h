// etcd's v3lock gRPC service (Lock, Unlock), behaving as etcd's server-side implementation
// (etcdserver/api/v3lock): Lock is concurrency.Mutex.Lock on a session over the request's
// lease (a fresh 60 s lease when 0, as concurrency.NewSession grants; the session is
// orphaned: the caller keeps its lease alive); Unlock deletes the lock key. Each Lock runs
// on its own thread (it may wait long) and waits for its predecessor's deletion
// (BlockingKv::WaitDeletes: a watch on the hub, or polling without one).
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace rusd::frontend {

class KvDispatcher;
class WatchHub;

// `kv` must outlive the service.
// `hub` (null: poll) lets Lock wait for the predecessor's deletion on a watch.
std::unique_ptr<grpc::Service> MakeLockService(KvDispatcher& kv, WatchHub* hub = nullptr);

}  // namespace rusd::frontend
