// MachineShape: what a restore of a machine's state needs of the machine it goes into — its
// virtio devices as the guest sees them, the CPUID its vCPUs were given and the MSRs a capture
// saves. A replicating primary sends its shape in Hello and the standby compares it with its own
// before the session starts: everything a takeover would refuse is refused then, when the
// operator can still fix it, not at the failover (DESIGN.md, "Failover").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/mmio_transport.hpp"

namespace tandem {

// virtio device ids (the virtio spec's): what Identity::deviceId says.
inline constexpr uint32_t kVirtioNetDevice = 1, kVirtioBlockDevice = 2;

struct MachineShape {
  std::vector<dev::virtio::Transport::Identity> devices;  // in device order: disks, then NICs
  std::vector<uint8_t> cpuid;  // vCPU 0's kvm_cpuid_entry2 array (the others differ in APIC ids only)
  std::vector<uint32_t> msrs;  // saved by a capture, set by a restore
  bool operator==(const MachineShape&) const = default;
};

// Why a guest of shape `guest` could not be restored into a machine of shape `here`: one sentence
// naming the first difference and what to do, or nullopt when it could. `here` may know more MSRs.
std::optional<std::string> whyNotRestorable(const MachineShape& guest, const MachineShape& here);

}  // namespace tandem
