#include "raftd/entry_batch_encoder.h"

#include <gtest/gtest.h>

#include "rusd/internal.pb.h"

namespace rusd::raftd {
namespace {

TEST(EntryBatchEncoderTest, HandEncodedBatchParsesAsEntryBatch) {
  std::vector<raft::Entry> entries(4);
  entries[0] = raft::Entry{1, 1, raft::EntryType::kEmpty, ""};
  entries[1] = raft::Entry{2, 1, raft::EntryType::kNormal, "command-bytes"};
  entries[2] = raft::Entry{300, 1ull << 40, raft::EntryType::kNormal, std::string(70000, 'z')};
  entries[3] = raft::Entry{301, 1ull << 40, raft::EntryType::kConfChange, std::string("\0\1", 2)};
  std::string out;
  size_t expected_size = 0;
  for (const auto& e : entries) {
    AppendEntryToBatch(e, &out);
    expected_size += EncodedEntrySize(e);
  }
  EXPECT_EQ(out.size(), expected_size);

  internal::EntryBatch batch;
  ASSERT_TRUE(batch.ParseFromString(out));
  ASSERT_EQ(batch.entries_size(), 4);
  EXPECT_EQ(batch.entries(0).type(), internal::Entry::EMPTY);
  EXPECT_EQ(batch.entries(0).index(), 1u);
  EXPECT_EQ(batch.entries(1).data(), "command-bytes");
  EXPECT_EQ(batch.entries(1).type(), internal::Entry::NORMAL);
  EXPECT_EQ(batch.entries(2).index(), 300u);
  EXPECT_EQ(batch.entries(2).term(), 1ull << 40);
  EXPECT_EQ(batch.entries(2).data().size(), 70000u);
  EXPECT_EQ(batch.entries(3).type(), internal::Entry::CONF_CHANGE);
  EXPECT_EQ(batch.entries(3).data(), std::string("\0\1", 2));
  // Byte-identical to what protobuf writes itself.
  EXPECT_EQ(batch.SerializeAsString(), out);
}

}  // namespace
}  // namespace rusd::raftd
