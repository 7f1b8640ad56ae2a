#include "supervisor/cluster_ids.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "common/url.h"

namespace rusd::supervisor {
namespace {

uint64_t FirstEightBytesBigEndian(const unsigned char* digest) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | digest[i];
  return v;
}

}  // namespace

Result<std::vector<InitialMember>> ParseInitialCluster(const std::string& text) {
  std::vector<InitialMember> members;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("'" + item + "' is not a name=URL pair");
    }
    std::string name = item.substr(0, eq);
    std::string url = item.substr(eq + 1);
    auto parsed = ParseUrl(url);
    if (!parsed.ok()) return parsed.status();
    auto it = std::find_if(members.begin(), members.end(),
                           [&name](const InitialMember& m) { return m.name == name; });
    if (it == members.end()) {
      members.push_back({name, {url}});
    } else {
      it->peer_urls.push_back(url);
    }
  }
  if (members.empty()) return Status::InvalidArgument("the initial cluster is empty");
  return members;
}

uint64_t ComputeMemberId(const std::vector<std::string>& peer_urls, const std::string& token,
                         std::optional<int64_t> unix_time) {
  std::vector<std::string> sorted = peer_urls;
  std::sort(sorted.begin(), sorted.end());
  std::string input;
  for (const auto& u : sorted) input += u;
  input += token;
  if (unix_time) input += std::to_string(*unix_time);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return FirstEightBytesBigEndian(digest);
}

uint64_t ComputeClusterId(std::vector<uint64_t> member_ids) {
  std::sort(member_ids.begin(), member_ids.end());
  std::string input;
  for (uint64_t id : member_ids) {
    for (int shift = 56; shift >= 0; shift -= 8) input.push_back(static_cast<char>(id >> shift));
  }
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return FirstEightBytesBigEndian(digest);
}

Result<ClusterIds> DeriveClusterIds(const std::vector<InitialMember>& members,
                                    const std::string& name, const std::string& token) {
  ClusterIds ids;
  std::vector<uint64_t> member_ids;
  std::set<uint64_t> seen;
  bool found = false;
  for (const auto& m : members) {
    uint64_t id = ComputeMemberId(m.peer_urls, token);
    if (id == 0) return Status::InvalidArgument("cannot use 0 as member id");
    if (!seen.insert(id).second) {
      return Status::InvalidArgument("member exists with identical ID " + IdToHex(id) +
                                     " (member " + m.name + " repeats another member's peer URLs)");
    }
    member_ids.push_back(id);
    if (m.name == name) {
      ids.member_id = id;
      found = true;
    }
  }
  if (!found) {
    return Status::InvalidArgument("couldn't find local name \"" + name +
                                   "\" in the initial cluster configuration");
  }
  ids.cluster_id = ComputeClusterId(member_ids);
  return ids;
}

std::string IdToHex(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(id));
  return buf;
}

Result<std::vector<ClusterMember>> ResolveClusterMembers(const std::string& initial_cluster,
                                                         const std::string& token) {
  auto members = ParseInitialCluster(initial_cluster);
  if (!members.ok()) return members.status();
  std::vector<ClusterMember> out;
  for (const InitialMember& m : *members) {
    out.push_back(ClusterMember{ComputeMemberId(m.peer_urls, token), m.name, m.peer_urls});
  }
  return out;
}

}  // namespace rusd::supervisor
