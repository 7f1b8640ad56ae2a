#include "supervisor/node_identity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "supervisor/cluster_ids.h"

namespace rusd::supervisor {
namespace {

Status Errno(const std::string& what) {
  return Status::IoError(what + ": " + std::strerror(errno));
}

Status FsyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("fsync " + path);
  return Status::Ok();
}

Result<NodeIdentity> Parse(const std::string& path, const std::string& text) {
  NodeIdentity id;
  bool have_member = false, have_cluster = false;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) return Status::DataLoss(path + ": malformed line '" + line + "'");
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "name") {
      id.name = value;
    } else if (key == "initial_cluster") {
      id.initial_cluster = value;
    } else if (key == "initial_cluster_token") {
      id.initial_cluster_token = value;
    } else if (key == "member_id" || key == "cluster_id") {
      uint64_t v = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v, 16);
      if (ec != std::errc() || ptr != value.data() + value.size() || v == 0) {
        return Status::DataLoss(path + ": bad " + key + " '" + value + "'");
      }
      (key == "member_id" ? id.member_id : id.cluster_id) = v;
      (key == "member_id" ? have_member : have_cluster) = true;
    }
  }
  if (!have_member || !have_cluster) {
    return Status::DataLoss(path + ": member_id or cluster_id missing");
  }
  return id;
}

}  // namespace

std::string NodeIdentityPath(const std::string& data_dir) {
  return data_dir + "/member/identity";
}

Result<NodeIdentity> LoadOrCreateNodeIdentity(const std::string& data_dir,
                                              const NodeIdentity& derived) {
  const std::string path = NodeIdentityPath(data_dir);
  {
    std::ifstream in(path);
    if (in) {
      std::stringstream buf;
      buf << in.rdbuf();
      return Parse(path, buf.str());
    }
    if (errno != ENOENT) return Errno("read " + path);
  }
  const std::string member_dir = data_dir + "/member";
  if (::mkdir(member_dir.c_str(), 0700) != 0 && errno != EEXIST) return Errno("mkdir " + member_dir);

  std::ostringstream text;
  text << "# rusd node identity: derived from --initial-cluster and --initial-cluster-token at\n"
       << "# the first start, as etcd derives them; never changes afterwards.\n"
       << "name=" << derived.name << "\n"
       << "member_id=" << IdToHex(derived.member_id) << "\n"
       << "cluster_id=" << IdToHex(derived.cluster_id) << "\n";
  if (!derived.initial_cluster.empty()) {
    text << "initial_cluster=" << derived.initial_cluster << "\n"
         << "initial_cluster_token=" << derived.initial_cluster_token << "\n";
  }
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create " + tmp);
  std::string s = text.str();
  ssize_t n = ::write(fd, s.data(), s.size());
  if (n != static_cast<ssize_t>(s.size()) || ::fsync(fd) != 0) {
    Status st = Errno("write " + tmp);
    ::close(fd);
    return st;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename " + tmp);
  RUSD_RETURN_IF_ERROR(FsyncPath(member_dir, O_RDONLY | O_DIRECTORY));
  NodeIdentity out = derived;
  out.created = true;
  return out;
}

}  // namespace rusd::supervisor
