// MemberTargets: member id -> the gRPC target of its advertised client URL, parsed once per
// member list rather than on every call (the lease forwarder asks for the leader's target
// on each forwarded keep-alive batch and TimeToLive).
//
// Promises: Target() answers from the member list whose version it is given; the list is
// fetched and parsed only when that version differs from the one cached. Versions must
// change whenever the list does (RingClient::member_list_version). The version must be
// read before the list is fetched, so a list newer than its version is at worst parsed
// once more, never kept under a newer version it does not reflect.
//
// Threads: any thread; one mutex around the cache (held across `fetch`, which is short).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rusd::frontend {

class MemberTargets {
 public:
  // `url_to_target` maps one client URL to a dialable target, "" for one it cannot dial.
  using UrlToTarget = std::function<std::string(std::string_view url)>;
  explicit MemberTargets(UrlToTarget url_to_target) : url_to_target_(std::move(url_to_target)) {}

  // The target of `member_id`'s first dialable client URL; "" if it has none or is not in
  // the list. `fetch` returns the list (a serialized etcdserverpb.MemberListResponse).
  std::string Target(uint64_t member_id, uint64_t version,
                     const std::function<std::string()>& fetch);

  // How many times a list was parsed (tests).
  uint64_t rebuilds() const;

 private:
  const UrlToTarget url_to_target_;
  mutable std::mutex mu_;
  bool cached_ = false;                              // mu_
  uint64_t version_ = 0;                             // mu_
  std::unordered_map<uint64_t, std::string> targets_;  // mu_
  uint64_t rebuilds_ = 0;                            // mu_
};

}  // namespace rusd::frontend
