#include "machine/machine_shape.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "base/error.hpp"

namespace tandem {

namespace {

std::string deviceName(const std::vector<dev::virtio::Transport::Identity>& devices, size_t index) {
  size_t sameKind = 0;
  for (size_t i = 0; i < index; ++i) sameKind += devices[i].deviceId == devices[index].deviceId;
  switch (devices[index].deviceId) {
    case kVirtioBlockDevice: return concat("disk ", sameKind, " (--disk number ", sameKind + 1, ")");
    case kVirtioNetDevice: return concat("NIC ", sameKind, " (--net number ", sameKind + 1, ")");
    default: return concat("virtio device ", index, " (type ", devices[index].deviceId, ")");
  }
}

std::string describeConfig(uint32_t type, const std::vector<uint8_t>& config) {
  std::ostringstream text;
  if (type == kVirtioBlockDevice && config.size() >= 8) {
    uint64_t sectors = 0;
    for (int i = 7; i >= 0; --i) sectors = sectors << 8 | config[static_cast<size_t>(i)];
    text << "a disk of " << sectors * 512 << " bytes";
  } else if (type == kVirtioNetDevice && config.size() >= 6) {
    text << "MAC " << std::hex << std::setfill('0');
    for (size_t i = 0; i < 6; ++i) text << (i ? ":" : "") << std::setw(2) << int(config[i]);
  } else {
    text << config.size() << " bytes of config";
  }
  return text.str();
}

}  // namespace

std::optional<std::string> whyNotRestorable(const MachineShape& guest, const MachineShape& here) {
  if (guest.devices.size() != here.devices.size())
    return concat("the guest has ", guest.devices.size(), " virtio devices and this standby ", here.devices.size(),
                  "; give the standby the same number of --disk and --net options");
  for (size_t i = 0; i < guest.devices.size(); ++i) {
    const auto &g = guest.devices[i], &h = here.devices[i];
    if (g.deviceId != h.deviceId)
      return concat("the guest's ", deviceName(guest.devices, i), " is where this standby has its ", deviceName(here.devices, i),
                    "; give --disk and --net in the primary's order");
    if (g.config != h.config)
      return concat("the guest's ", deviceName(guest.devices, i), " is ", describeConfig(g.deviceId, g.config),
                    " and this standby's is ", describeConfig(h.deviceId, h.config),
                    g.deviceId == kVirtioNetDevice ? "; give the standby the guest's MAC (or no mac= at all: it then takes the guest's)"
                                             : "; give the standby a disk of the same size");
    if (g.features != h.features || g.queues != h.queues)
      return concat("the guest's ", deviceName(guest.devices, i), " has features 0x", std::hex, g.features, std::dec, " and ",
                    g.queues, " queues where this standby's has 0x", std::hex, h.features, std::dec, " and ", h.queues,
                    "; run the same tandem version on both hosts");
  }
  if (guest.cpuid != here.cpuid)
    return "the guest's vCPUs were given another CPUID than this host's KVM gives; a takeover needs hosts with the same CPU "
           "features (and the same tandem version)";
  std::vector<uint32_t> known = here.msrs;
  std::sort(known.begin(), known.end());
  for (uint32_t msr : guest.msrs)
    if (!std::binary_search(known.begin(), known.end(), msr))
      return concat("the guest's vCPUs have MSR 0x", std::hex, msr, " that this host's KVM cannot restore; a takeover needs "
                    "hosts with the same CPU features and kernel");
  return std::nullopt;
}

}  // namespace tandem
