#include "stored/mvcc/request_validation.h"

#include "etcd/etcdserverpb/rpc.pb.h"
#include "stored/mvcc/kv_errors.h"

namespace rusd::stored {

Status ValidateRangeRequest(const etcdserverpb::RangeRequest& request) {
  if (request.key().empty()) return kv_errors::EmptyKey();
  return Status::Ok();
}

Status ValidatePutRequest(const etcdserverpb::PutRequest& request) {
  if (request.key().empty()) return kv_errors::EmptyKey();
  if (request.ignore_value() && !request.value().empty()) return kv_errors::ValueProvided();
  if (request.ignore_lease() && request.lease() != 0) return kv_errors::LeaseProvided();
  return Status::Ok();
}

Status ValidateDeleteRangeRequest(const etcdserverpb::DeleteRangeRequest& request) {
  if (request.key().empty()) return kv_errors::EmptyKey();
  return Status::Ok();
}

}  // namespace rusd::stored
