// ToByteBuffer: a Watch response's parts as one gRPC message.
#include "frontend/watch_byte_buffer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rusd::frontend {
namespace {

std::vector<std::string> SlicesOf(const grpc::ByteBuffer& buf) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buf.Dump(&slices).ok());
  std::vector<std::string> out;
  for (const grpc::Slice& s : slices) {
    out.emplace_back(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

TEST(WatchByteBuffer, SmallResponseIsJoinedInOneSlice) {
  WatchSendQueue::Parts parts{"head", std::string(kJoinedBytes - 4, 'b')};
  grpc::ByteBuffer buf = ToByteBuffer(std::move(parts));
  EXPECT_EQ(SlicesOf(buf), std::vector<std::string>{"head" + std::string(kJoinedBytes - 4, 'b')});
}

TEST(WatchByteBuffer, LargeResponseKeepsItsBodyAsASecondSliceWithoutACopy) {
  std::string body(kJoinedBytes + 1, 'b');
  body[0] = 'x';
  const char* body_bytes = body.data();
  grpc::ByteBuffer buf = ToByteBuffer(WatchSendQueue::Parts{"head", std::move(body)});
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buf.Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 2u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size()), "head");
  EXPECT_EQ(slices[1].size(), kJoinedBytes + 1);
  EXPECT_EQ(reinterpret_cast<const char*>(slices[1].begin()), body_bytes);  // not copied
  EXPECT_EQ(slices[1].begin()[0], 'x');
  EXPECT_EQ(buf.Length(), 4 + kJoinedBytes + 1);
}

TEST(WatchByteBuffer, LargeRawResponseIsItsBodyAlone) {
  std::string body(kJoinedBytes + 1, 'r');
  const char* body_bytes = body.data();
  grpc::ByteBuffer buf = ToByteBuffer(WatchSendQueue::Parts{"", std::move(body)});
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buf.Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(reinterpret_cast<const char*>(slices[0].begin()), body_bytes);
  EXPECT_EQ(slices[0].size(), kJoinedBytes + 1);
}

}  // namespace
}  // namespace rusd::frontend
