// The watch benchmark's hand-made wire format against the generated protobuf classes: what
// one writes the other reads, and malformed input is refused, not misread.
#include "bench/loadgen_cxx/watch_wire.h"

#include <gtest/gtest.h>

#include "etcd/etcdserverpb/rpc.pb.h"

namespace rusd::loadgen {
namespace {

std::string Body(const std::string& frame) {
  EXPECT_GE(frame.size(), 5u);
  EXPECT_EQ(frame[0], 0);
  const size_t n = (size_t{static_cast<uint8_t>(frame[1])} << 24) |
                   (size_t{static_cast<uint8_t>(frame[2])} << 16) |
                   (size_t{static_cast<uint8_t>(frame[3])} << 8) | static_cast<uint8_t>(frame[4]);
  EXPECT_EQ(n + 5, frame.size());
  return frame.substr(5);
}

TEST(WatchWire, CreateAndPutFramesParseAsTheirMessages) {
  etcdserverpb::WatchRequest w;
  ASSERT_TRUE(w.ParseFromString(Body(WatchCreateFrame("wb/", "wb0"))));
  ASSERT_TRUE(w.has_create_request());
  EXPECT_EQ(w.create_request().key(), "wb/");
  EXPECT_EQ(w.create_request().range_end(), "wb0");
  ASSERT_TRUE(w.ParseFromString(Body(WatchCreateFrame("wb/00042", ""))));
  EXPECT_EQ(w.create_request().key(), "wb/00042");
  EXPECT_TRUE(w.create_request().range_end().empty());

  etcdserverpb::PutRequest p;
  ASSERT_TRUE(p.ParseFromString(Body(PutFrame("wb/00001", "1764000000123456789"))));
  EXPECT_EQ(p.key(), "wb/00001");
  EXPECT_EQ(p.value(), "1764000000123456789");
}

TEST(WatchWire, ScanReadsTheFieldsAndCountsEvents) {
  etcdserverpb::WatchResponse r;
  r.mutable_header()->set_revision(99);
  r.set_watch_id(1234567);
  r.set_canceled(true);
  r.set_compact_revision(77);
  r.set_cancel_reason("gone");
  for (int i = 0; i < 3; ++i) {
    auto* e = r.add_events();
    e->mutable_kv()->set_key("wb/0000" + std::to_string(i));
    e->mutable_kv()->set_value(std::to_string(1000 + i));
    e->mutable_kv()->set_mod_revision(10 + i);
    e->mutable_kv()->set_create_revision(5);
    e->mutable_prev_kv()->set_key("prev");  // stepped over
  }
  const std::string b = r.SerializeAsString();
  ScannedWatchResponse s;
  const char* why = nullptr;
  ASSERT_TRUE(ScanWatchResponse(b, &s, &why));
  EXPECT_EQ(s.watch_id, 1234567);
  EXPECT_FALSE(s.created);
  EXPECT_TRUE(s.canceled);
  EXPECT_EQ(s.compact_revision, 77);
  EXPECT_EQ(s.cancel_reason, "gone");
  EXPECT_EQ(s.events, 3);

  std::vector<WatchEventKv> ev;
  ASSERT_TRUE(DecodeWatchEvents(b, &ev, &why));
  ASSERT_EQ(ev.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(ev[i].has_kv);
    EXPECT_EQ(ev[i].key, "wb/0000" + std::to_string(i));
    EXPECT_EQ(ev[i].value, std::to_string(1000 + i));
    EXPECT_EQ(ev[i].mod_revision, 10 + i);
  }

  etcdserverpb::WatchResponse created;
  created.set_created(true);  // watch id 0: the field is absent on the wire
  ASSERT_TRUE(ScanWatchResponse(created.SerializeAsString(), &s, &why));
  EXPECT_TRUE(s.created);
  EXPECT_EQ(s.watch_id, 0);
  EXPECT_EQ(s.events, 0);
}

TEST(WatchWire, TruncatedOrGarbageMessagesAreRefused) {
  etcdserverpb::WatchResponse r;
  r.set_watch_id(5);
  auto* e = r.add_events();
  e->mutable_kv()->set_key("wb/00001");
  e->mutable_kv()->set_value("123");
  const std::string b = r.SerializeAsString();
  ScannedWatchResponse s;
  std::vector<WatchEventKv> ev;
  const char* why = nullptr;
  for (size_t cut = 1; cut < b.size(); ++cut) {
    const std::string t = b.substr(0, cut);
    // A cut inside a field is malformed; a cut between fields is a shorter valid message.
    if (ScanWatchResponse(t, &s, &why)) {
      EXPECT_EQ(s.events, 0) << cut;
    } else {
      EXPECT_NE(why, nullptr);
    }
  }
  EXPECT_FALSE(ScanWatchResponse(std::string("\x5a\xff", 2), &s, &why));  // bad length
  EXPECT_FALSE(ScanWatchResponse(std::string("\x0f", 1), &s, &why));      // wire type 7
  EXPECT_FALSE(ScanWatchResponse(std::string("\x10\xff\xff", 3), &s, &why));  // open varint
  // An event whose KeyValue overruns it.
  std::string bad = "\x5a\x04\x12\x09\x0a\x01";
  EXPECT_TRUE(ScanWatchResponse(bad, &s, &why));  // the scan does not look inside events
  EXPECT_FALSE(DecodeWatchEvents(bad, &ev, &why));
}

}  // namespace
}  // namespace rusd::loadgen
