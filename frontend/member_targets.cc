#include "frontend/member_targets.h"

#include "etcd/etcdserverpb/rpc.pb.h"

namespace rusd::frontend {

std::string MemberTargets::Target(uint64_t member_id, uint64_t version,
                                  const std::function<std::string()>& fetch) {
  std::lock_guard lock(mu_);
  if (!cached_ || version != version_) {
    targets_.clear();
    etcdserverpb::MemberListResponse members;
    // An unparsable list caches as empty (no targets) until the next version.
    if (members.ParseFromString(fetch())) {
      for (const etcdserverpb::Member& m : members.members()) {
        for (const std::string& url : m.clienturls()) {
          std::string target = url_to_target_(url);
          if (target.empty()) continue;
          targets_.emplace(m.id(), std::move(target));
          break;
        }
      }
    }
    cached_ = true;
    version_ = version;
    ++rebuilds_;
  }
  auto it = targets_.find(member_id);
  return it == targets_.end() ? std::string() : it->second;
}

uint64_t MemberTargets::rebuilds() const {
  std::lock_guard lock(mu_);
  return rebuilds_;
}

}  // namespace rusd::frontend
