// The machine a source or primary asks this standby to hold, from its Hello and the standby's own
// devices: Error(BadInput) with one sentence when this standby cannot hold it (the operator has to
// change something), for a migration and a replication alike.
#pragma once

#include "machine/machine.hpp"
#include "protocol.capnp.h"

namespace tandem {

// A NIC the standby was given without mac= takes the MAC of the peer's NIC in its place (the
// shape in a replicating primary's Hello): the MAC belongs to the guest, not to a host.
// peer: "source" or "primary", for the message.
MachineConfig machineForHello(const MachineConfig& base, schema::Hello::Reader hello, const char* peer);

}  // namespace tandem
