// etcd's KV error texts and gRPC codes, in one place (etcd 3.5: api/v3rpc/rpctypes/error.go,
// etcdserver/errors.go, mvcc/kvstore.go). The frontend forwards Status code and message
// unchanged as the gRPC status, so these strings are what clients match on.
// Header-only and pure: callable from any thread.
#pragma once

#include "common/status.h"

namespace rusd::stored::kv_errors {

inline constexpr char kEmptyKey[] = "etcdserver: key is not provided";
inline constexpr char kKeyNotFound[] = "etcdserver: key not found";
inline constexpr char kValueProvided[] = "etcdserver: value is provided";
inline constexpr char kLeaseProvided[] = "etcdserver: lease is provided";
inline constexpr char kTooManyOps[] = "etcdserver: too many operations in txn request";
inline constexpr char kDuplicateKey[] = "etcdserver: duplicate key given in txn request";
inline constexpr char kCompacted[] = "etcdserver: mvcc: required revision has been compacted";
inline constexpr char kFutureRevision[] =
    "etcdserver: mvcc: required revision is a future revision";
inline constexpr char kLeaseNotFound[] = "etcdserver: requested lease not found";
inline constexpr char kLeaseExists[] = "etcdserver: lease already exists";
inline constexpr char kLeaseTtlTooLarge[] = "etcdserver: too large lease TTL";

// InvalidArgument, as etcd's ErrGRPCEmptyKey etc.
inline Status EmptyKey() { return Status::InvalidArgument(kEmptyKey); }
inline Status KeyNotFound() { return Status::InvalidArgument(kKeyNotFound); }
inline Status ValueProvided() { return Status::InvalidArgument(kValueProvided); }
inline Status LeaseProvided() { return Status::InvalidArgument(kLeaseProvided); }
inline Status TooManyOps() { return Status::InvalidArgument(kTooManyOps); }
inline Status DuplicateKey() { return Status::InvalidArgument(kDuplicateKey); }
// OutOfRange, as etcd's ErrGRPCCompacted / ErrGRPCFutureRev.
inline Status Compacted() { return Status::OutOfRange(kCompacted); }
inline Status FutureRevision() { return Status::OutOfRange(kFutureRevision); }
// NotFound, as etcd's ErrGRPCLeaseNotFound (used once leases exist).
inline Status LeaseNotFound() { return Status::NotFound(kLeaseNotFound); }
// etcd's ErrGRPCLeaseExist (FailedPrecondition) and ErrGRPCLeaseTTLTooLarge (OutOfRange).
inline Status LeaseExists() { return Status::FailedPrecondition(kLeaseExists); }
inline Status LeaseTtlTooLarge() { return Status::OutOfRange(kLeaseTtlTooLarge); }

}  // namespace rusd::stored::kv_errors
