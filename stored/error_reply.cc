#include "stored/error_reply.h"

#include "rusd/internal.pb.h"

namespace rusd::stored {

std::string EncodeErrorReply(int code, const std::string& message) {
  internal::ErrorReply reply;
  reply.set_code(code);
  reply.set_message(message);
  return reply.SerializeAsString();
}

}  // namespace rusd::stored
