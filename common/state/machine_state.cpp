#include "state/machine_state.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>

#include "base/error.hpp"
#include "machine_state.capnp.h"

namespace tandem {

bool MachineState::operator==(const MachineState& o) const {
  if (regions.size() != o.regions.size()) return false;
  for (size_t i = 0; i < regions.size(); ++i)
    if (regions[i].start != o.regions[i].start || regions[i].size != o.regions[i].size) return false;
  return memorySize == o.memorySize && cmdline == o.cmdline && vcpus == o.vcpus && vm == o.vm && serial == o.serial && virtio == o.virtio;
}

namespace {

template <typename T>
capnp::Data::Reader bytesOf(const T& value) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(&value), sizeof(T));
}

template <typename T>
void fromBytes(capnp::Data::Reader data, T& out, const char* what) {
  if (data.size() != sizeof(T))
    failBadInput("machine state field ", what, " has ", data.size(), " bytes where ", sizeof(T), " belong");
  std::memcpy(&out, data.begin(), sizeof(T));
}

void toCapnp(const kvm::VcpuState& s, schema::VcpuState::Builder b) {
  b.setMpState(s.mpState);
  b.setRegs(bytesOf(s.regs));
  b.setSregs(bytesOf(s.sregs));
  b.setXsave(bytesOf(s.xsave));
  b.setXcrs(bytesOf(s.xcrs));
  b.setDebugRegs(bytesOf(s.debugRegs));
  b.setLapic(bytesOf(s.lapic));
  auto msrs = b.initMsrs(static_cast<unsigned>(s.msrs.size()));
  for (unsigned i = 0; i < s.msrs.size(); ++i) {
    msrs[i].setIndex(s.msrs[i].index);
    msrs[i].setValue(s.msrs[i].data);
  }
  b.setEvents(bytesOf(s.events));
}

kvm::VcpuState fromCapnp(schema::VcpuState::Reader r) {
  kvm::VcpuState s;
  s.mpState = r.getMpState();
  fromBytes(r.getRegs(), s.regs, "regs");
  fromBytes(r.getSregs(), s.sregs, "sregs");
  fromBytes(r.getXsave(), s.xsave, "xsave");
  fromBytes(r.getXcrs(), s.xcrs, "xcrs");
  fromBytes(r.getDebugRegs(), s.debugRegs, "debugRegs");
  fromBytes(r.getLapic(), s.lapic, "lapic");
  for (auto m : r.getMsrs()) s.msrs.push_back(kvm_msr_entry{m.getIndex(), 0, m.getValue()});
  fromBytes(r.getEvents(), s.events, "events");
  return s;
}

void toCapnp(const kvm::VmState& s, schema::VmState::Builder b) {
  b.setPicMaster(bytesOf(s.picMaster));
  b.setPicSlave(bytesOf(s.picSlave));
  b.setIoapic(bytesOf(s.ioapic));
  b.setPit(bytesOf(s.pit));
  b.setClockNs(s.clockNs);
}

kvm::VmState fromCapnp(schema::VmState::Reader r) {
  kvm::VmState s;
  fromBytes(r.getPicMaster(), s.picMaster, "picMaster");
  fromBytes(r.getPicSlave(), s.picSlave, "picSlave");
  fromBytes(r.getIoapic(), s.ioapic, "ioapic");
  fromBytes(r.getPit(), s.pit, "pit");
  s.clockNs = r.getClockNs();
  return s;
}

void toCapnp(const dev::Serial::State& s, schema::SerialState::Builder b) {
  b.setIer(s.ier);
  b.setLcr(s.lcr);
  b.setMcr(s.mcr);
  b.setMsr(s.msr);
  b.setScr(s.scr);
  b.setFcr(s.fcr);
  b.setDll(s.dll);
  b.setDlm(s.dlm);
  b.setThrEmptyInterrupt(s.thrEmptyInterrupt);
  std::vector<uint8_t> rx(s.rx.begin(), s.rx.end());
  b.setRx(capnp::Data::Reader(rx.data(), rx.size()));
}

dev::Serial::State fromCapnp(schema::SerialState::Reader r) {
  dev::Serial::State s;
  s.ier = r.getIer();
  s.lcr = r.getLcr();
  s.mcr = r.getMcr();
  s.msr = r.getMsr();
  s.scr = r.getScr();
  s.fcr = r.getFcr();
  s.dll = r.getDll();
  s.dlm = r.getDlm();
  s.thrEmptyInterrupt = r.getThrEmptyInterrupt();
  auto rx = r.getRx();
  if (rx.size() > dev::Serial::kRxCapacity) failBadInput("machine state holds ", rx.size(), " serial input bytes; at most ", dev::Serial::kRxCapacity, " fit");
  s.rx.assign(rx.begin(), rx.end());
  return s;
}

void toCapnp(const dev::virtio::Transport::State& s, schema::VirtioState::Builder b) {
  b.setDeviceFeaturesSel(s.deviceFeaturesSel);
  b.setDriverFeaturesSel(s.driverFeaturesSel);
  b.setQueueSel(s.queueSel);
  b.setDriverFeatures(s.driverFeatures);
  b.setStatus(s.status);
  b.setInterruptStatus(s.interruptStatus);
  b.setConfigGeneration(s.configGeneration);
  b.setDeviceId(s.deviceId);
  b.setConfig(capnp::Data::Reader(s.config.data(), s.config.size()));
  auto queues = b.initQueues(static_cast<unsigned>(s.queues.size()));
  for (unsigned i = 0; i < s.queues.size(); ++i) {
    const auto& q = s.queues[i];
    queues[i].setSize(q.size);
    queues[i].setReady(q.ready);
    queues[i].setDescTable(q.descTable);
    queues[i].setAvailRing(q.availRing);
    queues[i].setUsedRing(q.usedRing);
    queues[i].setLastAvail(q.lastAvail);
    queues[i].setUsedIdx(q.usedIdx);
  }
}

dev::virtio::Transport::State fromCapnp(schema::VirtioState::Reader r) {
  dev::virtio::Transport::State s;
  s.deviceFeaturesSel = r.getDeviceFeaturesSel();
  s.driverFeaturesSel = r.getDriverFeaturesSel();
  s.queueSel = r.getQueueSel();
  s.driverFeatures = r.getDriverFeatures();
  s.status = r.getStatus();
  s.interruptStatus = r.getInterruptStatus();
  s.configGeneration = r.getConfigGeneration();
  s.deviceId = r.getDeviceId();
  auto config = r.getConfig();
  s.config.assign(config.begin(), config.end());
  for (auto q : r.getQueues()) {
    dev::virtio::QueueState qs;
    qs.size = q.getSize();
    if (qs.size > dev::virtio::Queue::kMaxSize || (qs.size & (qs.size - 1)))
      failBadInput("virtio queue size ", qs.size, " in machine state is not a power of two up to ", dev::virtio::Queue::kMaxSize);
    qs.ready = q.getReady();
    qs.descTable = q.getDescTable();
    qs.availRing = q.getAvailRing();
    qs.usedRing = q.getUsedRing();
    qs.lastAvail = q.getLastAvail();
    qs.usedIdx = q.getUsedIdx();
    s.queues.push_back(qs);
  }
  return s;
}

}  // namespace

std::vector<uint8_t> encodeMachineState(const MachineState& state) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<schema::MachineState>();
  b.setVersion(schema::K_STATE_VERSION);
  b.setMemorySize(state.memorySize);
  auto regions = b.initRegions(static_cast<unsigned>(state.regions.size()));
  for (unsigned i = 0; i < state.regions.size(); ++i) {
    regions[i].setStart(state.regions[i].start.value);
    regions[i].setSize(state.regions[i].size);
  }
  b.setCmdline(state.cmdline);
  auto vcpus = b.initVcpus(static_cast<unsigned>(state.vcpus.size()));
  for (unsigned i = 0; i < state.vcpus.size(); ++i) toCapnp(state.vcpus[i], vcpus[i]);
  toCapnp(state.vm, b.initVm());
  toCapnp(state.serial, b.initSerial());
  auto virtio = b.initVirtio(static_cast<unsigned>(state.virtio.size()));
  for (unsigned i = 0; i < state.virtio.size(); ++i) toCapnp(state.virtio[i], virtio[i]);
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

MachineState decodeMachineState(std::span<const uint8_t> bytes) {
  if (bytes.size() % sizeof(capnp::word) != 0) failBadInput("machine state is not a whole number of words");
  // Cap'n Proto reads aligned words only: copy into an aligned buffer.
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = 64 * 1024 * 1024;
    capnp::FlatArrayMessageReader message(words, options);
    auto r = message.getRoot<schema::MachineState>();
    if (r.getVersion() != schema::K_STATE_VERSION)
      failBadInput("machine state version ", r.getVersion(), " is not the version ", schema::K_STATE_VERSION,
                   " this tandem reads");
    MachineState s;
    s.memorySize = r.getMemorySize();
    for (auto region : r.getRegions()) {
      GuestMemory::Region g;
      g.start = Gpa{region.getStart()};
      g.size = region.getSize();
      s.regions.push_back(g);
    }
    s.cmdline = r.getCmdline();
    for (auto v : r.getVcpus()) s.vcpus.push_back(fromCapnp(v));
    s.vm = fromCapnp(r.getVm());
    s.serial = fromCapnp(r.getSerial());
    for (auto v : r.getVirtio()) s.virtio.push_back(fromCapnp(v));
    if (s.vcpus.empty()) failBadInput("machine state has no vCPU");
    return s;
  } catch (const kj::Exception& e) {
    failBadInput("machine state is malformed: ", e.getDescription().cStr());
  }
}

}  // namespace tandem
