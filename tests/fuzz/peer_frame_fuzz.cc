// Fuzz target: the bytes a peer sends to --listen-peer-urls, through the transport's frame
// splitting and the Hello / HelloReply / Messages decoders (raftd/transport/wire_format.h),
// the way PeerTransport reads a connection. Anything decoded must re-encode and decode
// again to the same messages (the encoder and decoder agree on the format).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/transport/wire_format.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using rusd::transport::FrameKind;
using rusd::transport::FrameView;

void CheckMessagesRoundTrip(const std::vector<rusd::raft::Message>& msgs) {
  std::string frame;
  rusd::transport::AppendMessagesFrame(msgs, 0, msgs.size(), &frame);
  FrameView view;
  auto n = rusd::transport::SplitFrame(frame, &view);
  RUSD_FUZZ_CHECK(n.ok() && *n == frame.size() && view.kind == FrameKind::kMessages);
  std::vector<rusd::raft::Message> again;
  RUSD_FUZZ_CHECK(rusd::transport::DecodeMessages(view.body, &again).ok());
  RUSD_FUZZ_CHECK(again.size() == msgs.size());
  for (size_t i = 0; i < msgs.size(); ++i) {
    RUSD_FUZZ_CHECK(again[i].type == msgs[i].type && again[i].index == msgs[i].index &&
                    again[i].entries.size() == msgs[i].entries.size());
    for (size_t j = 0; j < msgs[i].entries.size(); ++j) {
      RUSD_FUZZ_CHECK(again[i].entries[j].data == msgs[i].entries[j].data);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view stream(reinterpret_cast<const char*>(data), size);
  bool handshake = true;  // the first frame is held to the handshake limit, as PeerTransport does
  while (!stream.empty()) {
    FrameView frame;
    auto n = rusd::transport::SplitFrame(stream, &frame,
                                         handshake ? rusd::transport::kMaxHandshakeFrameBytes
                                                   : rusd::transport::kMaxFrameBytes);
    handshake = false;
    if (!n.ok()) {
      RUSD_FUZZ_CHECK(!n.status().message().empty());
      return 0;
    }
    if (*n == 0) return 0;  // needs more bytes
    RUSD_FUZZ_CHECK(*n <= stream.size());
    stream.remove_prefix(*n);
    switch (frame.kind) {
      case FrameKind::kHello: {
        auto h = rusd::transport::DecodeHello(frame.body);
        if (!h.ok()) {
          RUSD_FUZZ_CHECK(!h.status().message().empty());
          break;
        }
        std::string out;
        rusd::transport::AppendHelloFrame(*h, &out);
        FrameView v;
        auto m = rusd::transport::SplitFrame(out, &v);
        RUSD_FUZZ_CHECK(m.ok() && *m == out.size());
        auto again = rusd::transport::DecodeHello(v.body);
        RUSD_FUZZ_CHECK(again.ok() && again->name == h->name &&
                        again->client_urls == h->client_urls);
        break;
      }
      case FrameKind::kHelloReply: {
        auto r = rusd::transport::DecodeHelloReply(frame.body);
        if (!r.ok()) RUSD_FUZZ_CHECK(!r.status().message().empty());
        break;
      }
      case FrameKind::kMessages: {
        std::vector<rusd::raft::Message> msgs;
        rusd::Status st = rusd::transport::DecodeMessages(frame.body, &msgs);
        if (!st.ok()) {
          RUSD_FUZZ_CHECK(!st.message().empty() && msgs.empty());
          break;
        }
        CheckMessagesRoundTrip(msgs);
        break;
      }
    }
  }
  return 0;
}
