#include "common/component_flags.h"

#include <charconv>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>

namespace rusd {
namespace {

Status ParseUnsigned(std::string_view text, int base, uint64_t* out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    return Status::InvalidArgument("not a number: '" + std::string(text) + "'");
  }
  return Status::Ok();
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016lx", static_cast<unsigned long>(v));
  return buf;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

// Names are free text in etcd: escape the characters the --members encoding uses.
std::string EscapeName(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '%' || c == ',' || c == '=' || c == '|' || static_cast<unsigned char>(c) < 0x20) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

Result<std::string> UnescapeName(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    uint64_t v = 0;
    if (i + 2 >= text.size() || !ParseUnsigned(text.substr(i + 1, 2), 16, &v).ok()) {
      return Status::InvalidArgument("bad escape in member name '" + text + "'");
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

std::string EncodeMembers(const std::vector<ClusterMember>& members) {
  std::string out;
  for (const ClusterMember& m : members) {
    if (!out.empty()) out += ',';
    out += Hex(m.id);
    out += '=';
    out += EscapeName(m.name);
    out += '=';
    for (size_t i = 0; i < m.peer_urls.size(); ++i) {
      if (i > 0) out += '|';
      out += m.peer_urls[i];
    }
  }
  return out;
}

Status DecodeMembers(const std::string& text, std::vector<ClusterMember>* out) {
  out->clear();
  for (const std::string& item : SplitCommas(text)) {
    const size_t a = item.find('=');
    const size_t b = a == std::string::npos ? a : item.find('=', a + 1);
    if (b == std::string::npos) return Status::InvalidArgument("expected id=name=urls, got '" + item + "'");
    ClusterMember m;
    RUSD_RETURN_IF_ERROR(ParseUnsigned(item.substr(0, a), 16, &m.id));
    auto name = UnescapeName(item.substr(a + 1, b - a - 1));
    if (!name.ok()) return name.status();
    m.name = std::move(*name);
    std::stringstream urls(item.substr(b + 1));
    std::string u;
    while (std::getline(urls, u, '|')) {
      if (!u.empty()) m.peer_urls.push_back(u);
    }
    if (m.id == 0) return Status::InvalidArgument("member id 0 in '" + item + "'");
    out->push_back(std::move(m));
  }
  return Status::Ok();
}

}  // namespace

Result<ComponentFlags> ComponentFlags::Parse(int argc, char** argv) {
  ComponentFlags f;
  using Setter = std::function<Status(const std::string&)>;
  auto u64 = [](uint64_t* dst, int base) {
    return Setter([dst, base](const std::string& v) { return ParseUnsigned(v, base, dst); });
  };
  auto u32 = [](uint32_t* dst) {
    return Setter([dst](const std::string& v) {
      uint64_t x = 0;
      RUSD_RETURN_IF_ERROR(ParseUnsigned(v, 10, &x));
      if (x > UINT32_MAX) return Status::InvalidArgument("out of range: " + v);
      *dst = static_cast<uint32_t>(x);
      return Status::Ok();
    });
  };
  auto str = [](std::string* dst) {
    return Setter([dst](const std::string& v) { *dst = v; return Status::Ok(); });
  };
  const std::map<std::string, Setter> setters = {
      {"segment", str(&f.segment)},
      {"data-dir", str(&f.data_dir)},
      {"name", str(&f.name)},
      {"member-id", u64(&f.member_id, 16)},
      {"cluster-id", u64(&f.cluster_id, 16)},
      {"listen-client-urls",
       Setter([&f](const std::string& v) { f.listen_client_urls = SplitCommas(v); return Status::Ok(); })},
      {"advertise-client-urls",
       Setter([&f](const std::string& v) { f.advertise_client_urls = SplitCommas(v); return Status::Ok(); })},
      {"listen-peer-urls",
       Setter([&f](const std::string& v) { f.listen_peer_urls = SplitCommas(v); return Status::Ok(); })},
      {"members", Setter([&f](const std::string& v) { return DecodeMembers(v, &f.members); })},
      {"max-request-bytes", u64(&f.max_request_bytes, 10)},
      {"max-txn-ops", u32(&f.max_txn_ops)},
      {"quota-backend-bytes", u64(&f.quota_backend_bytes, 10)},
      {"snapshot-count", u64(&f.snapshot_count, 10)},
      {"snapshot-bytes", u64(&f.snapshot_bytes, 10)},
      {"strict-reconfig-check", Setter([&f](const std::string& v) {
         if (v != "true" && v != "false") {
           return Status::InvalidArgument("want true or false: " + v);
         }
         f.strict_reconfig_check = v == "true";
         return Status::Ok();
       })},
      {"heartbeat-interval-ms", u32(&f.heartbeat_interval_ms)},
      {"election-timeout-ms", u32(&f.election_timeout_ms)},
      {"log-level", str(&f.log_level)},
      {"log-format", str(&f.log_format)},
      {"watch-progress-notify-interval", str(&f.watch_progress_notify_interval)},
      {"experimental-native-grpc", Setter([&f](const std::string& v) {
         if (v != "true" && v != "false") {
           return Status::InvalidArgument("want true or false: " + v);
         }
         f.experimental_native_grpc = v == "true";
         return Status::Ok();
       })},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg.find('=') == std::string::npos) {
      return Status::InvalidArgument("expected --key=value, got '" + arg + "'");
    }
    std::string key = arg.substr(2, arg.find('=') - 2);
    std::string value = arg.substr(arg.find('=') + 1);
    auto it = setters.find(key);
    if (it == setters.end()) return Status::InvalidArgument("unknown component flag --" + key);
    Status st = it->second(value);
    if (!st.ok()) return Status::InvalidArgument("--" + key + ": " + st.message());
  }
  if (f.segment.empty()) return Status::InvalidArgument("--segment is required");
  if (f.data_dir.empty()) return Status::InvalidArgument("--data-dir is required");
  return f;
}

std::vector<std::string> ComponentFlags::ToArgs() const {
  std::vector<std::string> args = {
      "--segment=" + segment,
      "--data-dir=" + data_dir,
      "--name=" + name,
      "--member-id=" + Hex(member_id),
      "--cluster-id=" + Hex(cluster_id),
      "--listen-client-urls=" + Join(listen_client_urls),
      "--advertise-client-urls=" + Join(advertise_client_urls),
      "--listen-peer-urls=" + Join(listen_peer_urls),
      "--members=" + EncodeMembers(members),
      "--max-request-bytes=" + std::to_string(max_request_bytes),
      "--max-txn-ops=" + std::to_string(max_txn_ops),
      "--quota-backend-bytes=" + std::to_string(quota_backend_bytes),
      "--snapshot-count=" + std::to_string(snapshot_count),
      "--snapshot-bytes=" + std::to_string(snapshot_bytes),
      std::string("--strict-reconfig-check=") + (strict_reconfig_check ? "true" : "false"),
      "--heartbeat-interval-ms=" + std::to_string(heartbeat_interval_ms),
      "--election-timeout-ms=" + std::to_string(election_timeout_ms),
      "--log-level=" + log_level,
      "--log-format=" + log_format,
      "--watch-progress-notify-interval=" + watch_progress_notify_interval,
  };
  // Only when not the default: without it every component's command line is what it was.
  if (!experimental_native_grpc) args.push_back("--experimental-native-grpc=false");
  return args;
}

}  // namespace rusd
