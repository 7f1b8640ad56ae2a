// etcd's v3election gRPC service (Campaign, Proclaim, Leader, Observe, Resign), behaving as
// etcd's server-side implementation (etcdserver/api/v3election over clientv3's
// concurrency.Election): keys "<name>/<lease hex>", the leader is the oldest key by create
// revision; errors "election: not leader", "election: no leader" and `"leader" field must be
// provided` with gRPC code Unknown, as etcd's plain Go errors reach clients.
//
// Campaign waits (BlockingKv::WaitDeletes, on a watch of the predecessor) on its own thread.
// Observe re-reads the leader key whenever the election prefix changes (a watch on the
// frontend's hub; every 50 ms by polling without one): it reports each new leader and each
// changed value it reads, but two proclamations that land before one re-read show only the
// last (etcd's Observe forwards each watch event and would show both). A campaign without a lease gets a fresh 60 s lease
// (concurrency.NewSession's default), as etcd.
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace rusd::frontend {

class KvDispatcher;
class WatchHub;

// `hub` (null: poll) lets Campaign and Observe wait on watches of the election prefix.
std::unique_ptr<grpc::Service> MakeElectionService(KvDispatcher& kv, WatchHub* hub = nullptr);

}  // namespace rusd::frontend
