#include "frontend/member_change.h"

namespace rusd::frontend {

void RequestMemberChange(RingClient& ring, const internal::MemberChangeRequest& request,
                         MemberChangeDone done) {
  ring.SubmitToRaft(ipc::MessageType::kMemberChange, request.SerializeAsString(),
                    [done = std::move(done)](const Status& st, std::string&& payload) {
                      internal::MemberChangeResult result;
                      if (st.ok() && !result.ParseFromString(payload)) {
                        done(Status::Internal("rusd: malformed member change reply"),
                             std::move(result));
                        return;
                      }
                      done(st, std::move(result));
                    });
}

void RequestMoveLeader(RingClient& ring, uint64_t target_id,
                       std::function<void(const Status& status)> done) {
  internal::MoveLeaderRequest req;
  req.set_target_id(target_id);
  ring.SubmitToRaft(ipc::MessageType::kMoveLeader, req.SerializeAsString(),
                    [done = std::move(done)](const Status& st, std::string&&) { done(st); });
}

}  // namespace rusd::frontend
