// The operations of etcd's v3lock and v3election servers (etcdserver/api/v3lock,
// v3election over clientv3's concurrency.Mutex and Election), shared by their gRPC services
// (lock_service, election_service) and the JSON gateway (lock_gateway). Each blocks its
// caller; Lock and Campaign wait (BlockingKv::WaitDeletes) until done, an error, or
// `cancelled()` turns true. Errors are etcd's, e.g. "election: not leader" with gRPC code
// Unknown (plain Go errors on etcd's wire).
#pragma once

#include <functional>

#include "common/status.h"

namespace v3lockpb {
class LockRequest;
class LockResponse;
class UnlockRequest;
class UnlockResponse;
}  // namespace v3lockpb
namespace v3electionpb {
class CampaignRequest;
class CampaignResponse;
class ProclaimRequest;
class ProclaimResponse;
class LeaderRequest;
class LeaderResponse;
class ResignRequest;
class ResignResponse;
}  // namespace v3electionpb

namespace rusd::frontend {

class BlockingKv;
using Cancelled = std::function<bool()>;

// concurrency.Mutex.Lock on a session over the request's lease (a fresh 60 s lease when 0,
// as concurrency.NewSession grants; the session is orphaned: the caller keeps it alive).
Status LockOp(BlockingKv& kv, const v3lockpb::LockRequest& req, v3lockpb::LockResponse* resp,
              const Cancelled& cancelled);
Status UnlockOp(BlockingKv& kv, const v3lockpb::UnlockRequest& req,
                v3lockpb::UnlockResponse* resp);

Status CampaignOp(BlockingKv& kv, const v3electionpb::CampaignRequest& req,
                  v3electionpb::CampaignResponse* resp, const Cancelled& cancelled);
Status ProclaimOp(BlockingKv& kv, const v3electionpb::ProclaimRequest& req,
                  v3electionpb::ProclaimResponse* resp);
Status LeaderOp(BlockingKv& kv, const v3electionpb::LeaderRequest& req,
                v3electionpb::LeaderResponse* resp);
Status ResignOp(BlockingKv& kv, const v3electionpb::ResignRequest& req,
                v3electionpb::ResignResponse* resp);

}  // namespace rusd::frontend
