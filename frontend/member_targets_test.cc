// MemberTargets: the member list is parsed once per version, not once per lookup.
#include "frontend/member_targets.h"

#include <gtest/gtest.h>

#include "etcd/etcdserverpb/rpc.pb.h"

namespace rusd::frontend {
namespace {

std::string List(const std::vector<std::pair<uint64_t, std::vector<std::string>>>& members) {
  etcdserverpb::MemberListResponse list;
  for (const auto& [id, urls] : members) {
    etcdserverpb::Member* m = list.add_members();
    m->set_id(id);
    for (const std::string& u : urls) m->add_clienturls(u);
  }
  return list.SerializeAsString();
}

std::string StripHttp(std::string_view url) {
  if (url.substr(0, 7) != "http://") return "";
  return std::string(url.substr(7));
}

TEST(MemberTargetsTest, ParsesTheListOncePerVersion) {
  MemberTargets targets(StripHttp);
  std::string list = List({{1, {"unix://x", "http://a:1"}}, {2, {"http://b:2"}}, {3, {}}});
  int fetches = 0;
  auto fetch = [&] {
    ++fetches;
    return list;
  };
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(targets.Target(1, 7, fetch), "a:1");  // the first dialable URL
    EXPECT_EQ(targets.Target(2, 7, fetch), "b:2");
    EXPECT_EQ(targets.Target(3, 7, fetch), "");  // no URL
    EXPECT_EQ(targets.Target(9, 7, fetch), "");  // not a member
  }
  EXPECT_EQ(fetches, 1);
  EXPECT_EQ(targets.rebuilds(), 1u);

  // A new version (the leader moved its URL): parsed again, once.
  list = List({{1, {"http://a:9"}}});
  EXPECT_EQ(targets.Target(1, 8, fetch), "a:9");
  EXPECT_EQ(targets.Target(2, 8, fetch), "");
  EXPECT_EQ(fetches, 2);
}

}  // namespace
}  // namespace rusd::frontend
