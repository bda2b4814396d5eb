// Vm: one KVM virtual machine: memory slots, the in-kernel irqchip and PIT, interrupt lines.
#pragma once

#include <cstdint>
#include <vector>

#include "base/fd.hpp"
#include "base/units.hpp"
#include "kvm/state.hpp"

namespace tandem::kvm {

class System;

class Vm {
public:
  // Creates the VM with its in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT.
  explicit Vm(const System& system);

  int fd() const { return fd_.get(); }
  const System& system() const { return system_; }

  // Maps [gpa, gpa + size) of the guest to host memory at hostAddress.
  void setMemoryRegion(uint32_t slot, Gpa gpa, uint64_t size, void* hostAddress, uint32_t flags = 0);
  // Fetches and clears slot's dirty log: one bit per page, words of 64 (KVM_GET_DIRTY_LOG).
  void getDirtyLog(uint32_t slot, std::vector<uint64_t>& bitmap);

  // Drives an irqchip input line (GSI) to level.
  void setIrqLine(uint32_t gsi, bool level);

  // A guest write of `value` (4 bytes) to MMIO address gpa signals fd instead of exiting to us.
  void addIoeventfd(Gpa gpa, uint32_t value, int fd);
  // An edge on an edge-triggered pin (level 1, then 0), delivered to the LAPIC before it returns.
  void pulseIrqLine(uint32_t gsi);

  // PIC master and slave, IOAPIC, PIT and kvmclock. Every vCPU is parked.
  VmState save() const;
  // Once, on a fresh VM, before any vCPU runs.
  void restore(const VmState& state);

private:
  const System& system_;  // outlives the Vm
  Fd fd_;
};

}  // namespace tandem::kvm
