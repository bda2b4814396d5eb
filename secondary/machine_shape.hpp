// The machine a source or primary asks this standby to hold, from its Hello and the standby's own
// devices: Error(BadInput) with one sentence when this standby cannot hold it (the operator has to
// change something), for a migration and a replication alike.
#pragma once

#include "machine/machine.hpp"
#include "protocol.capnp.h"

namespace tandem {

// peer: "source" or "primary", for the message.
MachineConfig machineForHello(const MachineConfig& base, schema::Hello::Reader hello, const char* peer);

}  // namespace tandem
