#include "ipc/metrics_grpc_methods.h"

#include <string>

namespace rusd::ipc {
namespace {

// etcd 3.5's services (api/etcdserverpb/rpc.proto, v3election, v3lock) and grpc.health.v1,
// which etcd registers on the same server.
constexpr GrpcMethodInfo kMethods[] = {
    {"etcdserverpb.KV", "Range", "unary"},
    {"etcdserverpb.KV", "Put", "unary"},
    {"etcdserverpb.KV", "DeleteRange", "unary"},
    {"etcdserverpb.KV", "Txn", "unary"},
    {"etcdserverpb.KV", "Compact", "unary"},
    {"etcdserverpb.Watch", "Watch", "bidi_stream"},
    {"etcdserverpb.Lease", "LeaseGrant", "unary"},
    {"etcdserverpb.Lease", "LeaseRevoke", "unary"},
    {"etcdserverpb.Lease", "LeaseKeepAlive", "bidi_stream"},
    {"etcdserverpb.Lease", "LeaseTimeToLive", "unary"},
    {"etcdserverpb.Lease", "LeaseLeases", "unary"},
    {"etcdserverpb.Cluster", "MemberAdd", "unary"},
    {"etcdserverpb.Cluster", "MemberRemove", "unary"},
    {"etcdserverpb.Cluster", "MemberUpdate", "unary"},
    {"etcdserverpb.Cluster", "MemberList", "unary"},
    {"etcdserverpb.Cluster", "MemberPromote", "unary"},
    {"etcdserverpb.Maintenance", "Alarm", "unary"},
    {"etcdserverpb.Maintenance", "Status", "unary"},
    {"etcdserverpb.Maintenance", "Defragment", "unary"},
    {"etcdserverpb.Maintenance", "Hash", "unary"},
    {"etcdserverpb.Maintenance", "HashKV", "unary"},
    {"etcdserverpb.Maintenance", "Snapshot", "server_stream"},
    {"etcdserverpb.Maintenance", "MoveLeader", "unary"},
    {"etcdserverpb.Maintenance", "Downgrade", "unary"},
    {"etcdserverpb.Auth", "AuthEnable", "unary"},
    {"etcdserverpb.Auth", "AuthDisable", "unary"},
    {"etcdserverpb.Auth", "AuthStatus", "unary"},
    {"etcdserverpb.Auth", "Authenticate", "unary"},
    {"etcdserverpb.Auth", "UserAdd", "unary"},
    {"etcdserverpb.Auth", "UserGet", "unary"},
    {"etcdserverpb.Auth", "UserList", "unary"},
    {"etcdserverpb.Auth", "UserDelete", "unary"},
    {"etcdserverpb.Auth", "UserChangePassword", "unary"},
    {"etcdserverpb.Auth", "UserGrantRole", "unary"},
    {"etcdserverpb.Auth", "UserRevokeRole", "unary"},
    {"etcdserverpb.Auth", "RoleAdd", "unary"},
    {"etcdserverpb.Auth", "RoleGet", "unary"},
    {"etcdserverpb.Auth", "RoleList", "unary"},
    {"etcdserverpb.Auth", "RoleDelete", "unary"},
    {"etcdserverpb.Auth", "RoleGrantPermission", "unary"},
    {"etcdserverpb.Auth", "RoleRevokePermission", "unary"},
    {"v3electionpb.Election", "Campaign", "unary"},
    {"v3electionpb.Election", "Proclaim", "unary"},
    {"v3electionpb.Election", "Leader", "unary"},
    {"v3electionpb.Election", "Observe", "server_stream"},
    {"v3electionpb.Election", "Resign", "unary"},
    {"v3lockpb.Lock", "Lock", "unary"},
    {"v3lockpb.Lock", "Unlock", "unary"},
    {"grpc.health.v1.Health", "Check", "unary"},
    {"grpc.health.v1.Health", "Watch", "server_stream"},
};
constexpr int kMethodCount = static_cast<int>(sizeof kMethods / sizeof kMethods[0]);
static_assert(kMethodCount <= kGrpcOtherMethod, "grow kGrpcMethodSlots");

constexpr GrpcMethodInfo kOther = {"unknown", "unknown", "unary"};

constexpr const char* kCodeNames[kGrpcCodes] = {
    "OK",           "Canceled",          "Unknown",          "InvalidArgument",
    "DeadlineExceeded", "NotFound",      "AlreadyExists",    "PermissionDenied",
    "ResourceExhausted", "FailedPrecondition", "Aborted",    "OutOfRange",
    "Unimplemented", "Internal",         "Unavailable",      "DataLoss",
    "Unauthenticated"};

}  // namespace

int GrpcMethodCount() { return kMethodCount; }

const GrpcMethodInfo& GrpcMethodAt(int slot) {
  return slot >= 0 && slot < kMethodCount ? kMethods[slot] : kOther;
}

int GrpcMethodSlot(std::string_view full_method) {
  // "/etcdserverpb.KV/Range": once per call, a linear scan of 50 short strings is cheaper
  // than hashing them into a map that would need building.
  if (full_method.size() < 3 || full_method[0] != '/') return kGrpcOtherMethod;
  const size_t slash = full_method.find('/', 1);
  if (slash == std::string_view::npos) return kGrpcOtherMethod;
  const std::string_view service = full_method.substr(1, slash - 1);
  const std::string_view method = full_method.substr(slash + 1);
  for (int i = 0; i < kMethodCount; ++i) {
    if (method == kMethods[i].method && service == kMethods[i].service) return i;
  }
  return kGrpcOtherMethod;
}

const char* GrpcCodeName(int code) {
  return code >= 0 && code < kGrpcCodes ? kCodeNames[code] : "Unknown";
}

}  // namespace rusd::ipc
