#include "frontend/http_handler.h"

#include <algorithm>
#include <vector>

#include "frontend/json_text.h"

namespace rusd::frontend {
namespace {

// Go's http.Error: text/plain, nosniff, the message and a newline.
HttpResponse GoError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.body = message + "\n";
  return r;
}

HttpResponse MethodNotAllowed() {
  HttpResponse r = GoError(405, "Method Not Allowed");
  r.headers.emplace_back("Allow", "GET");
  return r;
}

}  // namespace

HttpResponse HttpHandler::Handle(const HttpRequest& request) {
  const std::string& path = request.path;
  if (path == "/version") {
    if (request.method != "GET") return MethodNotAllowed();
    HttpResponse r;
    r.content_type = "application/json";
    r.body = "{\"etcdserver\":\"" + versions_.server + "\",\"etcdcluster\":\"" +
             versions_.cluster + "\"}";
    return r;
  }
  if (path == "/metrics" && metrics_page_ != nullptr) {
    if (request.method != "GET") return MethodNotAllowed();
    HttpResponse r;
    r.content_type = metrics_page_->ContentType();
    r.body = metrics_page_->Render();
    return r;
  }
  if (path == "/health") {
    if (request.method != "GET") return MethodNotAllowed();
    return Health(request);
  }
  for (bool readyz : {false, true}) {
    const std::string root = readyz ? "/readyz" : "/livez";
    if (path == root || path.rfind(root + "/", 0) == 0) {
      std::string only = path == root ? std::string() : path.substr(root.size() + 1);
      if (request.method != "GET") return MethodNotAllowed();
      return Checks(request, readyz, only);
    }
  }
  if (gateway_ != nullptr) {
    std::optional<HttpResponse> r = gateway_->Serve(request);
    if (r) return std::move(*r);
  }
  return GoError(404, "404 page not found");
}

HttpResponse HttpHandler::Health(const HttpRequest& request) {
  const bool serializable =
      [&] {
        auto v = QueryValues(request.query, "serializable");
        return !v.empty() && v.front() == "true";
      }();
  std::string reason;
  if (!serializable && !probe_.HasLeader()) {
    reason = "RAFT NO LEADER";
  } else {
    Status st = probe_.Read(serializable);
    if (!st.ok()) reason = "RANGE ERROR:" + st.message();
  }
  if (reason.empty()) {
    HttpResponse r;
    r.content_type = "text/plain; charset=utf-8";  // what Go sniffs for etcd's body
    r.body = "{\"health\":\"true\",\"reason\":\"\"}";
    return r;
  }
  return GoError(503, "{\"health\":\"false\",\"reason\":\"" + JsonEscape(reason) + "\"}");
}

HttpResponse HttpHandler::Checks(const HttpRequest& request, bool readyz,
                                 const std::string& only) {
  // etcd 3.5: livez = {serializable_read}; readyz = {data_corruption, linearizable_read,
  // serializable_read}. rusd raises no alarms yet, so data_corruption always passes.
  std::vector<std::string> names = {"serializable_read"};
  if (readyz) names = {"data_corruption", "linearizable_read", "serializable_read"};
  if (!only.empty()) {
    if (std::find(names.begin(), names.end(), only) == names.end()) {
      return GoError(404, "404 page not found");
    }
    names = {only};
  } else {
    std::vector<std::string> excluded = QueryValues(request.query, "exclude");
    std::erase_if(names, [&](const std::string& n) {
      return std::find(excluded.begin(), excluded.end(), n) != excluded.end();
    });
  }
  std::string detail;
  bool failed = false;
  for (const std::string& name : names) {
    Status st;
    if (name == "serializable_read") st = probe_.Read(true);
    if (name == "linearizable_read") st = probe_.Read(false);
    if (st.ok()) {
      detail += "[+]" + name + " ok\n";
    } else {
      failed = true;
      detail += "[-]" + name + " failed: " + st.message() + "\n";
    }
  }
  if (failed) return GoError(503, detail);
  HttpResponse r;
  r.content_type = "text/plain; charset=utf-8";
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (QueryHas(request.query, "verbose")) r.body = detail;
  r.body += "ok\n";
  return r;
}

}  // namespace rusd::frontend
