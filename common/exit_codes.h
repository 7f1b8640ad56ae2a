// Exit statuses shared by the rusd components and the supervisor that reads them.
#pragma once

namespace rusd {

// A component hit a start-up failure that no restart can fix (a client port held by another
// process, a bad URL or flag): sysexits' EX_CONFIG. The supervisor stops the node on it, as
// etcd exits, instead of restarting into the same failure until the crash-loop limit.
inline constexpr int kExitConfigError = 78;

// A component finished a planned step that needs a fresh incarnation (stored after swapping
// in a snapshot: sysexits' EX_TEMPFAIL). The supervisor restarts it at once, without
// counting it as a crash.
inline constexpr int kExitRestartRequested = 75;

}  // namespace rusd
