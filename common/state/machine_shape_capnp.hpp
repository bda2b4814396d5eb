// MachineShape <-> schema::MachineShape (protocol.capnp), the part of a replicating primary's Hello
// that a standby compares with its own machine.
#pragma once

#include "machine/machine_shape.hpp"
#include "protocol.capnp.h"

namespace tandem {

void toCapnp(const MachineShape& shape, schema::MachineShape::Builder out);
// Reads what a peer sent: capnp's own bounds checks apply; sizes beyond the device limits are
// refused by the comparison that follows, not trusted.
MachineShape fromCapnp(schema::MachineShape::Reader in);

}  // namespace tandem
