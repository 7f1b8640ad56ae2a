#include "frontend/lock_kv.h"

#include <algorithm>
#include <future>
#include <optional>
#include <thread>

#include "frontend/key_change_waiter.h"
#include "frontend/kv_dispatcher.h"
#include "frontend/ring_client.h"
#include "rusd/internal.pb.h"

namespace rusd::frontend {

namespace {

// Submits one request and waits for its reply (RingClient's deadline bounds the wait).
template <typename Response, typename Send>
Result<Response> Call(Send&& send) {
  auto promise = std::make_shared<std::promise<std::pair<Status, std::string>>>();
  auto future = promise->get_future();
  send([promise](const Status& st, std::string&& payload) {
    promise->set_value({st, std::move(payload)});
  });
  auto [status, payload] = future.get();
  if (!status.ok()) return status;
  Response resp;
  if (!resp.ParseFromString(payload)) return Status::Internal("rusd: malformed reply");
  return resp;
}

}  // namespace

std::string PrefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  for (int i = static_cast<int>(end.size()) - 1; i >= 0; --i) {
    if (static_cast<unsigned char>(end[i]) < 0xff) {
      end[i] = static_cast<char>(static_cast<unsigned char>(end[i]) + 1);
      end.resize(i + 1);
      return end;
    }
  }
  return std::string(1, '\0');  // all 0xff: to the end of the keyspace
}

Result<etcdserverpb::TxnResponse> BlockingKv::Txn(const etcdserverpb::TxnRequest& req) {
  const std::string bytes = req.SerializeAsString();
  return Call<etcdserverpb::TxnResponse>(
      [&](RequestCallback cb) { kv_.Submit(KvMethod::kTxn, bytes, std::move(cb)); });
}

Result<etcdserverpb::RangeResponse> BlockingKv::Range(const etcdserverpb::RangeRequest& req) {
  const std::string bytes = req.SerializeAsString();
  return Call<etcdserverpb::RangeResponse>(
      [&](RequestCallback cb) { kv_.Submit(KvMethod::kRange, bytes, std::move(cb)); });
}

Result<etcdserverpb::DeleteRangeResponse> BlockingKv::Delete(const std::string& key) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key);
  const std::string bytes = req.SerializeAsString();
  return Call<etcdserverpb::DeleteRangeResponse>(
      [&](RequestCallback cb) { kv_.Submit(KvMethod::kDeleteRange, bytes, std::move(cb)); });
}

Result<int64_t> BlockingKv::GrantLease(int64_t ttl) {
  RingClient& ring = kv_.ring();
  internal::Command cmd;
  const uint64_t id = ring.NextRequestId();
  cmd.set_request_id(id);
  cmd.set_origin_member_id(ring.member_id());
  cmd.mutable_lease_grant()->set_ttl(ttl);
  cmd.mutable_lease_grant()->set_id(
      static_cast<int64_t>(ring.NextRequestId() & ((1ull << 63) - 1)));
  const std::string bytes = cmd.SerializeAsString();
  auto resp = Call<etcdserverpb::LeaseGrantResponse>(
      [&](RequestCallback cb) { ring.Propose(id, bytes, std::move(cb)); });
  if (!resp.ok()) return resp.status();
  return resp->id();
}

Result<etcdserverpb::RangeResponse> BlockingKv::FirstCreated(const std::string& prefix) {
  etcdserverpb::RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixRangeEnd(prefix));
  req.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  req.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  req.set_limit(1);
  return Range(req);
}

Result<etcdserverpb::ResponseHeader> BlockingKv::WaitDeletes(
    const std::string& prefix, int64_t max_create_rev, const std::function<bool()>& cancelled,
    std::chrono::milliseconds poll) {
  etcdserverpb::RangeRequest req;  // etcd: WithLastCreate + WithMaxCreateRev
  req.set_key(prefix);
  req.set_range_end(PrefixRangeEnd(prefix));
  req.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  req.set_sort_order(etcdserverpb::RangeRequest::DESCEND);
  req.set_limit(1);
  req.set_max_create_revision(max_create_rev);
  // Back off while the key waited on stays the same (many waiters would otherwise each cost
  // `1/poll` reads a second for as long as a lock is held); start fast again when it moves.
  std::chrono::milliseconds delay = poll;
  std::string last_key;
  std::optional<KeyChangeWaiter> waiter;
  if (hub_ != nullptr) waiter.emplace(*hub_);
  for (;;) {
    auto resp = Range(req);
    if (!resp.ok()) return resp.status();
    if (resp->kvs_size() == 0) return resp->header();
    if (cancelled()) return Status(StatusCode::kCancelled, "context canceled");
    if (waiter) {
      // Watch the predecessor's deletion from just after this read: a delete that
      // happened since is caught up from history, never missed.
      if (resp->kvs(0).key() != last_key) {
        last_key = resp->kvs(0).key();
        waiter->Watch(last_key, "", resp->header().revision() + 1, /*deletes_only=*/true);
      }
      for (auto waited = std::chrono::milliseconds(0); waited < kWatchRecheck;
           waited += kCancelCheck) {
        if (waiter->Wait(kCancelCheck)) break;
        if (cancelled()) return Status(StatusCode::kCancelled, "context canceled");
      }
      continue;
    }
    if (resp->kvs(0).key() == last_key) {
      delay = std::min(delay * 3 / 2, poll * 5);
    } else {
      last_key = resp->kvs(0).key();
      delay = poll;
    }
    std::this_thread::sleep_for(delay);
  }
}

CallThreads::~CallThreads() {
  std::list<std::thread> all;
  {
    std::lock_guard lock(mu_);
    all.swap(running_);
  }
  for (auto& t : all) t.join();
}

void CallThreads::Reap() {
  // Joins threads that said they finished (their last act), under mu_.
  for (auto id : finished_) {
    for (auto it = running_.begin(); it != running_.end(); ++it) {
      if (it->get_id() == id) {
        it->join();
        running_.erase(it);
        break;
      }
    }
  }
  finished_.clear();
}

bool CallThreads::Run(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  Reap();
  if (running_.size() >= max_threads_) return false;
  running_.emplace_back([this, fn = std::move(fn)] {
    fn();
    std::lock_guard l(mu_);
    finished_.push_back(std::this_thread::get_id());
  });
  return true;
}

}  // namespace rusd::frontend
