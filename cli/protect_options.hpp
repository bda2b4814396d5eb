// --protect and its knobs, the same for tandem run and tandem standby (which protects onward
// after a takeover).
#pragma once

#include <optional>

#include "cli/arguments.hpp"
#include "primary/replicator.hpp"

namespace tandem::cli {

// The option names, for Arguments.
inline const std::set<std::string> kProtectOptions = {"protect", "epoch-ms", "heartbeat-ms", "failover-after-ms"};

// nullopt without --protect; Error(BadInput) for a malformed address or a knob out of range, or a
// knob without --protect.
std::optional<ReplicationOptions> protectOptions(const Arguments& options);

// `to` with the knobs given in options (--epoch-ms ...), the others as in `base`.
ReplicationOptions replicationOptions(const Arguments& options, const std::string& to, ReplicationOptions base);

}  // namespace tandem::cli
