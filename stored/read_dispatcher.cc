#include "stored/read_dispatcher.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>

#include "ipc/ring.h"
#include "rusd/internal.pb.h"
#include "rusd/watch.pb.h"
#include "stored/applied_index_gate.h"
#include "stored/error_reply.h"
#include "stored/hash_read.h"
#include "stored/lease/lease_keeper.h"
#include "stored/read_worker_pool.h"

namespace rusd::stored {
namespace {

// The longest the reads thread sleeps with nothing to do: bounds how late it sees Stop().
constexpr std::chrono::milliseconds kIdleWait{100};

}  // namespace

ReadDispatcher::ReadDispatcher(ipc::Segment& segment, AppliedIndexGate& gate,
                               ReadWorkerPool& workers, KvStore& store)
    : segment_(segment), gate_(gate), workers_(workers), store_(store) {}

void ReadDispatcher::Run() {
  ipc::RingReader reads(segment_, ipc::RingId::kReads);
  ipc::RingReader* readers[] = {&reads};
  while (!stop_.load(std::memory_order_acquire)) {
    std::optional<ipc::Message> msg = reads.TryRead();
    if (!msg) {
      ipc::WaitForMessages(segment_, readers, kIdleWait);
      continue;
    }
    if (leases_ != nullptr && IsLeaseRead(msg->type)) {
      leases_->Submit(msg->type, msg->id, std::move(msg->payload));
      continue;
    }
    if (msg->type == ipc::MessageType::kWatchHistoryRead) {
      auto history = std::make_shared<internal::WatchHistoryRead>();
      if (!history->ParseFromString(msg->payload)) {
        workers_.SendReply(ipc::MessageType::kError, msg->id,
                           EncodeErrorReply(Status::InvalidArgument(
                               "rusd-stored: malformed watch history read")));
        continue;
      }
      workers_.ServeWatchHistory(msg->id, std::move(history));
      continue;
    }
    if (msg->type == ipc::MessageType::kHashKvRead || msg->type == ipc::MessageType::kHashRead) {
      ServeHash(store_, workers_, msg->type, msg->id, msg->payload);
      continue;
    }
    if (msg->type != ipc::MessageType::kRangeRead) {
      spdlog::warn("reads ring: unsupported frame type {} for request {:016x}",
                   static_cast<int>(msg->type), msg->id);
      workers_.SendReply(ipc::MessageType::kError, msg->id,
                         EncodeErrorReply(Status::Unimplemented(
                             "rusd-stored: unsupported read request type " +
                             std::to_string(static_cast<int>(msg->type)))));
      continue;
    }
    auto read = std::make_shared<internal::RangeRead>();
    if (!read->ParseFromString(msg->payload)) {
      spdlog::warn("reads ring: unparsable RangeRead for request {:016x}", msg->id);
      workers_.SendReply(
          ipc::MessageType::kError, msg->id,
          EncodeErrorReply(Status::InvalidArgument("rusd-stored: malformed range read")));
      continue;
    }
    gate_.Submit(msg->id, std::move(read));
  }
}

}  // namespace rusd::stored
