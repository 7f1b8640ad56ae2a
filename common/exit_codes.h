// Exit statuses shared by the rusd components and the supervisor that reads them.
#pragma once

namespace rusd {

// A component hit a start-up failure that no restart can fix (a client port held by another
// process, a bad URL or flag): sysexits' EX_CONFIG. The supervisor stops the node on it, as
// etcd exits, instead of restarting into the same failure until the crash-loop limit.
inline constexpr int kExitConfigError = 78;

}  // namespace rusd
