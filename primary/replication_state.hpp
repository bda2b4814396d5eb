// Where a replicating primary stands with its standby, one value at a time (status, metrics, log).
//
//   Connecting --Welcome--> Syncing --first Ack--> Protected
//                             ^   |                      |
//                   Welcome   |   v                      |
//                        Unprotected <-------------------+   (the session ended: silence, a refusal;
//                                                             it says why until the next Welcome)
//   Protected --tandem failover--> HandedOver      (the standby runs the guest; it stops here)
//   any --"superseded"--> Superseded               (the standby ran the guest; it stops here)
//   any --the guest ended, the standby confirmed--> Ended   (nothing left to protect)
//
// Only Protected means a failover would work right now: a standby holds a committed epoch of a
// machine it checked it can run.
#pragma once

#include <cstdint>

namespace tandem {

enum class ReplicationState : uint8_t { Connecting, Syncing, Protected, Unprotected, Superseded, HandedOver, Ended };

inline const char* name(ReplicationState state) {
  switch (state) {
    case ReplicationState::Connecting: return "connecting";
    case ReplicationState::Syncing: return "syncing";
    case ReplicationState::Protected: return "protected";
    case ReplicationState::Unprotected: return "unprotected";
    case ReplicationState::Superseded: return "superseded";
    case ReplicationState::HandedOver: return "handed over";
    case ReplicationState::Ended: return "ended";
  }
  return "?";
}

inline constexpr ReplicationState kAllReplicationStates[] = {
    ReplicationState::Connecting, ReplicationState::Syncing,    ReplicationState::Protected, ReplicationState::Unprotected,
    ReplicationState::Superseded, ReplicationState::HandedOver, ReplicationState::Ended};

}  // namespace tandem
