// A stand-in for rusd-frontend / rusd-raftd / rusd-stored in the supervisor's process
// tests: it parses the component flags, opens the segment, beats its heartbeat every
// 100 ms from a thread, and exits 0 on SIGTERM. Which component it is comes from the name
// it was started under (argv[0] = <bin>/rusd-raftd, ...).
//
// STUB_CRASH_COMPONENT=<raftd|stored|frontend> makes that component exit 1 after 50 ms
// (crash-loop tests), or exit STUB_CRASH_CODE instead of 1 when set; STUB_IGNORE_SIGTERM=1 makes every stub ignore SIGTERM (grace-period
// tests).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "common/component_flags.h"
#include "ipc/segment.h"

int main(int argc, char** argv) {
  auto flags = rusd::ComponentFlags::Parse(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "stub: %s\n", flags.status().ToString().c_str());
    return 2;
  }
  std::string self = argv[0];
  self = self.substr(self.rfind('/') + 1);
  rusd::ipc::Component component;
  if (self == "rusd-frontend") component = rusd::ipc::Component::kFrontend;
  else if (self == "rusd-raftd") component = rusd::ipc::Component::kRaftd;
  else if (self == "rusd-stored") component = rusd::ipc::Component::kStored;
  else return 2;

  const char* crash = std::getenv("STUB_CRASH_COMPONENT");
  if (crash != nullptr && self == std::string("rusd-") + crash) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const char* code = std::getenv("STUB_CRASH_CODE");
    return code != nullptr ? std::atoi(code) : 1;
  }
  const char* ignore = std::getenv("STUB_IGNORE_SIGTERM");
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  if (ignore != nullptr && std::strcmp(ignore, "1") == 0) {
    ::signal(SIGTERM, SIG_IGN);
  } else {
    ::sigprocmask(SIG_BLOCK, &set, nullptr);  // taken synchronously below
  }

  auto segment = rusd::ipc::Segment::Open(flags->segment);
  if (!segment.ok()) {
    std::fprintf(stderr, "stub: %s\n", segment.status().ToString().c_str());
    return 3;
  }
  auto& slot = (*segment)->component(component);
  std::atomic<bool> stop{false};
  std::thread beat([&] {
    while (!stop.load()) {
      slot.heartbeat.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  if (ignore != nullptr && std::strcmp(ignore, "1") == 0) {
    while (true) ::pause();
  }
  int sig = 0;
  ::sigwait(&set, &sig);
  stop.store(true);
  beat.join();
  return 0;
}
