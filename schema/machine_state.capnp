# The state of a tandem machine: what a snapshot holds and what replication and migration ship.
#
# One struct here per State struct in common/ (DESIGN.md, "Machine state"), field for field.
# Kernel structures that KVM defines (kvm_regs, kvm_sregs, ...) travel as Data holding the struct
# exactly as <linux/kvm.h> lays it out on x86-64; the reader checks each one's size.
# Version rule: add fields with new ordinals and defaults, never renumber; bump kStateVersion only
# when an old reader would misread a new writer.
@0xc56103775e42ce5e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("tandem::schema");

const kStateVersion :UInt32 = 1;

struct Msr {
  index @0 :UInt32;
  value @1 :UInt64;
}

struct VcpuState {
  mpState @0 :UInt32;    # KVM_MP_STATE_*
  regs @1 :Data;         # struct kvm_regs
  sregs @2 :Data;        # struct kvm_sregs
  xsave @3 :Data;        # struct kvm_xsave, region[1024] (4096 bytes)
  xcrs @4 :Data;         # struct kvm_xcrs
  debugRegs @5 :Data;    # struct kvm_debugregs
  lapic @6 :Data;        # struct kvm_lapic_state
  msrs @7 :List(Msr);    # every MSR of KVM_GET_MSR_INDEX_LIST the vCPU could read, TSC included
  events @8 :Data;       # struct kvm_vcpu_events
}

struct VmState {
  picMaster @0 :Data;    # struct kvm_pic_state
  picSlave @1 :Data;     # struct kvm_pic_state
  ioapic @2 :Data;       # struct kvm_ioapic_state
  pit @3 :Data;          # struct kvm_pit_state2
  clockNs @4 :UInt64;    # KVM_GET_CLOCK: kvmclock in guest nanoseconds
}

struct SerialState {
  ier @0 :UInt8;
  lcr @1 :UInt8;
  mcr @2 :UInt8;
  msr @3 :UInt8;
  scr @4 :UInt8;
  fcr @5 :UInt8;
  dll @6 :UInt8;
  dlm @7 :UInt8;
  thrEmptyInterrupt @8 :Bool;
  rx @9 :Data;           # received bytes the guest has not read yet, oldest first
}

struct VirtioQueueState {
  size @0 :UInt16;
  ready @1 :Bool;
  descTable @2 :UInt64;  # guest-physical
  availRing @3 :UInt64;
  usedRing @4 :UInt64;
  lastAvail @5 :UInt16;  # next available entry the device takes
  usedIdx @6 :UInt16;    # the device's copy of used->idx
}

struct VirtioState {     # one virtio-mmio transport and its queues
  deviceFeaturesSel @0 :UInt32;
  driverFeaturesSel @1 :UInt32;
  queueSel @2 :UInt32;
  driverFeatures @3 :UInt64;
  status @4 :UInt32;
  interruptStatus @5 :UInt32;
  configGeneration @6 :UInt32;
  queues @7 :List(VirtioQueueState);
  deviceId @8 :UInt32;   # 1 net, 2 block
  config @9 :Data;       # the first bytes of its config space: a disk's capacity, a NIC's MAC
}

struct MemoryRegion {
  start @0 :UInt64;      # guest-physical
  size @1 :UInt64;
}

struct MachineState {
  version @0 :UInt32;    # kStateVersion of the writer
  memorySize @1 :UInt64;
  regions @2 :List(MemoryRegion);
  cmdline @3 :Text;      # what the guest was booted with, for people reading a snapshot
  vcpus @4 :List(VcpuState);
  vm @5 :VmState;
  serial @6 :SerialState;
  virtio @7 :List(VirtioState);  # in device order: the disks, then (later) the network devices
}
