// MachineState: the whole state of a machine as values. Guest memory travels beside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "devices/serial.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "kvm/state.hpp"
#include "memory/guest_memory.hpp"

namespace tandem {

struct MachineState {
  uint64_t memorySize = 0;
  std::vector<GuestMemory::Region> regions;  // as GuestMemory::layout(memorySize) made them
  std::string cmdline;
  std::vector<kvm::VcpuState> vcpus;
  kvm::VmState vm;
  dev::Serial::State serial;
  std::vector<dev::virtio::Transport::State> virtio;  // one per virtio device, in device order

  bool operator==(const MachineState& o) const;
};

// Serializes to a Cap'n Proto message (schema/machine_state.capnp) as a flat array of words.
std::vector<uint8_t> encodeMachineState(const MachineState& state);
// Parses and converts it back. Anything malformed (a bad message, a struct of the wrong size, an
// unknown version) throws Error(BadInput) with a sentence saying what; nothing half-built escapes.
MachineState decodeMachineState(std::span<const uint8_t> bytes);

}  // namespace tandem
