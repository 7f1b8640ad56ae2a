// etcd's API-layer checks as the frontend applies them before proposing (the shared pure
// implementation in stored/mvcc/{request,txn}_validation.h): each rule and its exact text.
#include <gtest/gtest.h>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "stored/mvcc/request_validation.h"
#include "stored/mvcc/txn_validation.h"

namespace rusd::frontend {
namespace {

using etcdserverpb::TxnRequest;

void ExpectInvalid(const Status& st, const std::string& message) {
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), message);
}

etcdserverpb::RequestOp* AddPut(google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* ops,
                              const std::string& key) {
  auto* op = ops->Add();
  op->mutable_request_put()->set_key(key);
  return op;
}

void AddDelete(google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* ops,
               const std::string& key, const std::string& end = "") {
  auto* d = ops->Add()->mutable_request_delete_range();
  d->set_key(key);
  d->set_range_end(end);
}

TEST(RequestValidation, RangeWithoutKeyIsRejected) {
  etcdserverpb::RangeRequest r;
  ExpectInvalid(stored::ValidateRangeRequest(r), "etcdserver: key is not provided");
  r.set_key("a");
  EXPECT_TRUE(stored::ValidateRangeRequest(r).ok());
}

TEST(RequestValidation, PutChecksKeyValueAndLeaseFlags) {
  etcdserverpb::PutRequest r;
  ExpectInvalid(stored::ValidatePutRequest(r), "etcdserver: key is not provided");
  r.set_key("k");
  EXPECT_TRUE(stored::ValidatePutRequest(r).ok());
  r.set_ignore_value(true);
  r.set_value("v");
  ExpectInvalid(stored::ValidatePutRequest(r), "etcdserver: value is provided");
  r.clear_value();
  r.set_ignore_lease(true);
  r.set_lease(7);
  ExpectInvalid(stored::ValidatePutRequest(r), "etcdserver: lease is provided");
}

TEST(RequestValidation, DeleteWithoutKeyIsRejected) {
  etcdserverpb::DeleteRangeRequest r;
  ExpectInvalid(stored::ValidateDeleteRangeRequest(r), "etcdserver: key is not provided");
}

TEST(RequestValidation, TxnOverMaxOpsIsRejected) {
  TxnRequest r;
  for (int i = 0; i < 3; ++i) AddPut(r.mutable_success(), std::string(1, static_cast<char>('a' + i)));
  EXPECT_TRUE(stored::ValidateTxnRequest(r, 3).ok());
  ExpectInvalid(stored::ValidateTxnRequest(r, 2), "etcdserver: too many operations in txn request");
  TxnRequest c;
  for (int i = 0; i < 3; ++i) c.add_compare()->set_key("c");
  ExpectInvalid(stored::ValidateTxnRequest(c, 2), "etcdserver: too many operations in txn request");
}

TEST(RequestValidation, NestedTxnSharesTheOpBudget) {
  TxnRequest r;
  AddPut(r.mutable_success(), "a");
  auto* inner = r.add_success()->mutable_request_txn();
  AddPut(inner->mutable_success(), "b");
  AddPut(inner->mutable_success(), "c");
  // Outer uses 2 of 3; the inner txn gets 3 - 2 = 1 and has 2 ops.
  ExpectInvalid(stored::ValidateTxnRequest(r, 3), "etcdserver: too many operations in txn request");
  EXPECT_TRUE(stored::ValidateTxnRequest(r, 4).ok());
}

TEST(RequestValidation, TxnCompareOrOpWithoutKeyIsRejected) {
  TxnRequest r;
  r.add_compare();
  ExpectInvalid(stored::ValidateTxnRequest(r, 128), "etcdserver: key is not provided");
  TxnRequest f;
  AddPut(f.mutable_failure(), "");
  ExpectInvalid(stored::ValidateTxnRequest(f, 128), "etcdserver: key is not provided");
}

TEST(RequestValidation, TxnOpWithNoRequestIsKeyNotFound) {
  TxnRequest r;
  r.add_success();
  ExpectInvalid(stored::ValidateTxnRequest(r, 128), "etcdserver: key not found");
}

TEST(RequestValidation, TxnPuttingOneKeyTwiceIsDuplicate) {
  TxnRequest r;
  AddPut(r.mutable_success(), "a");
  AddPut(r.mutable_success(), "a");
  ExpectInvalid(stored::ValidateTxnRequest(r, 128), "etcdserver: duplicate key given in txn request");
}

TEST(RequestValidation, TxnSameKeyInSuccessAndFailureIsFine) {
  TxnRequest r;
  AddPut(r.mutable_success(), "a");
  AddPut(r.mutable_failure(), "a");
  EXPECT_TRUE(stored::ValidateTxnRequest(r, 128).ok());
}

TEST(RequestValidation, TxnPutInsideDeletedRangeIsDuplicate) {
  TxnRequest r;
  AddDelete(r.mutable_success(), "a", "c");
  AddPut(r.mutable_success(), "b");
  ExpectInvalid(stored::ValidateTxnRequest(r, 128), "etcdserver: duplicate key given in txn request");
  TxnRequest outside;
  AddDelete(outside.mutable_success(), "a", "c");
  AddPut(outside.mutable_success(), "c");  // range end is exclusive
  EXPECT_TRUE(stored::ValidateTxnRequest(outside, 128).ok());
  TxnRequest point;
  AddDelete(point.mutable_success(), "k");
  AddPut(point.mutable_success(), "k");
  ExpectInvalid(stored::ValidateTxnRequest(point, 128), "etcdserver: duplicate key given in txn request");
  TxnRequest prefix_of;
  AddDelete(prefix_of.mutable_success(), "k");
  AddPut(prefix_of.mutable_success(), "k2");
  EXPECT_TRUE(stored::ValidateTxnRequest(prefix_of, 128).ok());
}

TEST(RequestValidation, TxnDuplicateAcrossNestedTxnIsDetected) {
  TxnRequest r;
  AddPut(r.mutable_success(), "a");
  auto* inner = r.add_success()->mutable_request_txn();
  AddPut(inner->mutable_success(), "a");
  ExpectInvalid(stored::ValidateTxnRequest(r, 128), "etcdserver: duplicate key given in txn request");

  TxnRequest both_branches;
  auto* t = both_branches.add_success()->mutable_request_txn();
  AddPut(t->mutable_success(), "x");
  AddPut(t->mutable_failure(), "x");  // only one branch of the inner txn runs
  EXPECT_TRUE(stored::ValidateTxnRequest(both_branches, 128).ok());
}

}  // namespace
}  // namespace rusd::frontend
