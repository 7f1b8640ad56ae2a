#include "supervisor/join_cluster.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "raftd/transport/peer_transport.h"
#include "supervisor/cluster_ids.h"
#include "raftd/transport/wire_format.h"

namespace rusd::supervisor {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

// "<hex id>\t<name>\t<url>,<url>"
bool ParseEntry(const std::string& e, ClusterMember* m) {
  std::vector<std::string> f = Split(e, '\t');
  if (f.size() < 2) return false;
  m->id = std::strtoull(f[0].c_str(), nullptr, 16);
  m->name = f[1];
  m->peer_urls = f.size() > 2 ? Split(f[2], ',') : std::vector<std::string>{};
  return m->id != 0;
}

std::string FormatEntry(const ClusterMember& m) {
  std::ostringstream o;
  o << std::hex << m.id << '\t' << m.name << '\t';
  for (size_t i = 0; i < m.peer_urls.size(); ++i) o << (i ? "," : "") << m.peer_urls[i];
  return o.str();
}

// One query to one peer URL (blocking, bounded by `timeout`).
Result<transport::HelloReply> AskOne(const std::string& url, std::chrono::milliseconds timeout) {
  size_t p = url.find("://");
  std::string hostport = p == std::string::npos ? url : url.substr(p + 3);
  size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) return Status::InvalidArgument(url + ": no port");
  std::string host = hostport.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string port = hostport.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return Status::Unavailable(url + ": cannot resolve");
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const bool connected = ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
  ::freeaddrinfo(res);
  if (!connected) {
    std::string err = std::strerror(errno);
    ::close(fd);
    return Status::Unavailable(url + ": " + err);
  }
  std::string out;
  transport::Hello hello;  // ids and cluster id 0: a membership query
  transport::AppendHelloFrame(hello, &out);
  if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    ::close(fd);
    return Status::Unavailable(url + ": send failed");
  }
  std::string in;
  char buf[4096];
  for (;;) {
    transport::FrameView frame;
    auto n = transport::SplitFrame(in, &frame, transport::kMaxHandshakeFrameBytes);
    if (!n.ok()) {
      ::close(fd);
      return n.status();
    }
    if (*n > 0) {
      ::close(fd);
      if (frame.kind != transport::FrameKind::kHelloReply) {
        return Status::Unavailable(url + ": unexpected answer");
      }
      return transport::DecodeHelloReply(frame.body);
    }
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) {
      ::close(fd);
      return Status::Unavailable(url + ": no answer");
    }
    in.append(buf, static_cast<size_t>(r));
  }
}

}  // namespace

Result<JoinedCluster> QueryExistingCluster(const std::vector<std::string>& ask_urls,
                                           const std::vector<std::string>& own_peer_urls,
                                           std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  // `etcdctl member add` returns once the leader applied the change; the member asked first
  // may be a follower that has not applied it yet. An answer without this node is final
  // only when no member has it for a while.
  const auto not_found_deadline = start + std::min(timeout, kMemberAddPropagationGrace);
  std::string last_error = "no peer URL to ask";
  std::optional<uint64_t> answered_without_us;  // the cluster id of such an answer
  for (;;) {
    for (const std::string& url : ask_urls) {
      auto reply = AskOne(url, std::chrono::milliseconds(1000));
      if (!reply.ok()) {
        last_error = reply.status().message();
        continue;
      }
      if (reply->name != transport::kMembershipQueryName) {
        last_error = url + ": not answered as a membership query: " + reply->error;
        continue;
      }
      JoinedCluster c;
      c.cluster_id = reply->member_id;
      for (const std::string& e : reply->client_urls) {
        ClusterMember m;
        if (!ParseEntry(e, &m)) continue;
        bool mine = false;
        for (const auto& u : m.peer_urls) {
          for (const auto& own : own_peer_urls) mine |= u == own;
        }
        if (mine) {
          c.member_id = m.id;
        } else {
          c.others.push_back(std::move(m));
        }
      }
      if (c.member_id != 0) return c;
      answered_without_us = c.cluster_id;
    }
    const auto now = std::chrono::steady_clock::now();
    if (answered_without_us && (now >= not_found_deadline || now >= deadline)) {
      return Status::NotFound("cluster " + IdToHex(*answered_without_us) +
                              " has no member with peer URLs of this node (add it first: "
                              "etcdctl member add)");
    }
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Status::Unavailable("cannot reach the existing cluster: " + last_error);
}

std::string JoinedClusterPath(const std::string& data_dir) {
  return data_dir + "/member/joined";
}

Status SaveJoinedCluster(const std::string& data_dir, const JoinedCluster& c) {
  std::filesystem::create_directories(data_dir + "/member");
  std::ostringstream o;
  o << std::hex << c.cluster_id << '\n' << c.member_id << '\n';
  for (const auto& m : c.others) o << FormatEntry(m) << '\n';
  const std::string path = JoinedClusterPath(data_dir);
  std::ofstream f(path + ".tmp", std::ios::trunc);
  f << o.str();
  f.close();
  if (!f || std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
    return Status::IoError("cannot write " + path);
  }
  return Status::Ok();
}

Result<JoinedCluster> LoadJoinedCluster(const std::string& data_dir) {
  std::ifstream f(JoinedClusterPath(data_dir));
  if (!f) return Status::NotFound("not joined");
  JoinedCluster c;
  std::string line;
  if (!std::getline(f, line)) return Status::DataLoss(JoinedClusterPath(data_dir) + ": empty");
  c.cluster_id = std::strtoull(line.c_str(), nullptr, 16);
  if (!std::getline(f, line)) return Status::DataLoss(JoinedClusterPath(data_dir) + ": truncated");
  c.member_id = std::strtoull(line.c_str(), nullptr, 16);
  while (std::getline(f, line)) {
    ClusterMember m;
    if (ParseEntry(line, &m)) c.others.push_back(std::move(m));
  }
  return c;
}

}  // namespace rusd::supervisor
