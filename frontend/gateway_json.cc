#include "frontend/gateway_json.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include "frontend/gateway.h"
#include "frontend/json_text.h"

namespace rusd::frontend {

HttpResponse JsonErrorResponse(const Status& st) {
  HttpResponse r;
  r.status = HttpStatusFromGrpcCode(static_cast<int>(st.code()));
  r.content_type = "application/json";
  std::string msg(1, '"');
  msg.append(JsonEscape(st.message())).push_back('"');
  r.body.append("{\"error\":").append(msg);
  r.body.append(",\"code\":").append(std::to_string(static_cast<int>(st.code())));
  r.body.append(",\"message\":").append(msg).push_back('}');
  return r;
}

Status ParseJsonRequest(const std::string& body, google::protobuf::Message* request) {
  if (body.empty()) return Status::Ok();
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(body, request, parse).ok()) {
    return Status::InvalidArgument("invalid JSON request body");
  }
  return Status::Ok();
}

HttpResponse JsonMessageResponse(const google::protobuf::Message& response) {
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  HttpResponse r;
  r.content_type = "application/json";
  if (!google::protobuf::util::MessageToJsonString(response, &r.body, print).ok()) {
    return JsonErrorResponse(Status::Internal("cannot encode the response as JSON"));
  }
  return r;
}

}  // namespace rusd::frontend
