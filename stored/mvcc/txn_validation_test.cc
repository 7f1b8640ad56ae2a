// etcd's API-layer checks on requests (key.go) as pure functions.
#include <gtest/gtest.h>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/request_validation.h"
#include "stored/mvcc/txn_validation.h"

namespace rusd::stored {
namespace {

using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;

void AddPut(google::protobuf::RepeatedPtrField<RequestOp>* ops, const std::string& k) {
  ops->Add()->mutable_request_put()->set_key(k);
}
void AddDel(google::protobuf::RepeatedPtrField<RequestOp>* ops, const std::string& k,
            const std::string& end = "") {
  auto* d = ops->Add()->mutable_request_delete_range();
  d->set_key(k);
  d->set_range_end(end);
}

TEST(TxnValidationTest, DuplicatePutsAndPutOverDeleteAreRejected) {
  TxnRequest t;
  AddPut(t.mutable_success(), "a");
  AddPut(t.mutable_success(), "a");
  EXPECT_EQ(ValidateTxnRequest(t).message(), kv_errors::kDuplicateKey);

  TxnRequest d;
  AddDel(d.mutable_success(), "a", "c");
  AddPut(d.mutable_success(), "b");
  EXPECT_EQ(ValidateTxnRequest(d).code(), StatusCode::kInvalidArgument);

  TxnRequest ok;
  AddDel(ok.mutable_success(), "a", "c");
  AddPut(ok.mutable_success(), "c");  // range end is exclusive
  AddPut(ok.mutable_failure(), "a");  // other branch
  EXPECT_TRUE(ValidateTxnRequest(ok).ok());

  // etcd quirk: a delete with range_end "\0" is an empty affine interval.
  TxnRequest from;
  AddDel(from.mutable_success(), "a", std::string(1, '\0'));
  AddPut(from.mutable_success(), "b");
  EXPECT_TRUE(ValidateTxnRequest(from).ok());
}

TEST(TxnValidationTest, NestedTxnsShareTheDuplicateCheck) {
  TxnRequest inner;
  AddPut(inner.mutable_success(), "k");
  AddPut(inner.mutable_failure(), "k");  // then/else may both put k
  TxnRequest outer;
  *outer.add_success()->mutable_request_txn() = inner;
  EXPECT_TRUE(ValidateTxnRequest(outer).ok());
  AddPut(outer.mutable_success(), "k");  // but not again at the outer level
  EXPECT_EQ(ValidateTxnRequest(outer).message(), kv_errors::kDuplicateKey);

  TxnRequest outer_del;
  AddDel(outer_del.mutable_success(), "k");
  *outer_del.add_success()->mutable_request_txn() = inner;
  EXPECT_EQ(ValidateTxnRequest(outer_del).message(), kv_errors::kDuplicateKey);
}

TEST(TxnValidationTest, EmptyKeysEmptyOpsAndTooManyOps) {
  TxnRequest t;
  t.add_compare();
  EXPECT_EQ(ValidateTxnRequest(t).message(), kv_errors::kEmptyKey);
  TxnRequest e;
  e.add_success();
  EXPECT_EQ(ValidateTxnRequest(e).message(), kv_errors::kKeyNotFound);
  TxnRequest many;
  for (int i = 0; i < 129; ++i) AddPut(many.mutable_success(), "k" + std::to_string(i));
  EXPECT_EQ(ValidateTxnRequest(many).message(), kv_errors::kTooManyOps);
  EXPECT_TRUE(ValidateTxnRequest(many, 200).ok());
}

TEST(RequestValidationTest, PutRangeDeleteChecks) {
  etcdserverpb::PutRequest p;
  EXPECT_EQ(ValidatePutRequest(p).message(), kv_errors::kEmptyKey);
  p.set_key("k");
  p.set_ignore_value(true);
  p.set_value("v");
  EXPECT_EQ(ValidatePutRequest(p).message(), kv_errors::kValueProvided);
  p.clear_value();
  p.set_ignore_lease(true);
  p.set_lease(1);
  EXPECT_EQ(ValidatePutRequest(p).message(), kv_errors::kLeaseProvided);
  etcdserverpb::RangeRequest r;
  EXPECT_EQ(ValidateRangeRequest(r).code(), StatusCode::kInvalidArgument);
  etcdserverpb::DeleteRangeRequest d;
  EXPECT_EQ(ValidateDeleteRangeRequest(d).message(), kv_errors::kEmptyKey);
}

}  // namespace
}  // namespace rusd::stored
