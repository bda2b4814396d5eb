// Machine: guest memory, vCPUs and devices of one VM, and the run loop around them.
//
// Threads: one per vCPU (VcpuRunner), the console's reader, and whoever owns the Machine (usually
// the CLI's main thread), which starts, pauses, resumes and stops it. pause() returns only when
// every vCPU is parked, so the caller may then read or change any state.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.hpp"
#include "boot/elf_image.hpp"
#include "devices/console.hpp"
#include "output/sinks.hpp"
#include "output/output_gate.hpp"
#include "devices/exit_port.hpp"
#include "devices/idle_port.hpp"
#include "devices/mmio_bus.hpp"
#include "devices/pio_bus.hpp"
#include "devices/serial.hpp"
#include "devices/virtio/blk.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/net.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu.hpp"
#include "kvm/vm.hpp"
#include "machine/io_thread.hpp"
#include "machine/machine_shape.hpp"
#include "machine/vcpu_runner.hpp"
#include "machine/vcpu_throttle.hpp"
#include "memory/dirty_tracker.hpp"
#include "memory/guest_memory.hpp"
#include "state/machine_state.hpp"

namespace tandem {

struct DiskConfig {
  std::string path;
  bool readonly = false;
};

struct NetConfig {
  std::string tap;
  std::optional<std::array<uint8_t, 6>> mac;  // derived from the tap's name when absent
  // The tap, opened already: a standby opens its taps once and lends them to every machine it
  // builds (a tap takes one opener; the machine of a committed epoch holds it while the next
  // session's machine is built). Opened by the machine when null.
  std::shared_ptr<dev::Tap> opened;
};

struct MachineConfig {
  std::string kernel;   // ELF64 with a tandem or PVH entry note
  std::string cmdline;
  uint64_t memory = 256 * kMiB;
  uint32_t cpus = 1;
  std::vector<DiskConfig> disks;  // virtio-blk devices, in order
  std::vector<NetConfig> nets;    // virtio-net devices, after the disks
};

// Why a machine stopped running.
struct MachineExit {
  enum class Kind {
    PowerOff,    // the guest wrote the exit port; status is what it wrote
    GuestFault,  // triple fault, emulation failure, failed entry: message names the vCPU and rip
    HostError,   // tandem itself failed (an ioctl, a thread)
    Stopped,     // stop() was called
  };
  Kind kind = Kind::Stopped;
  int status = 0;
  std::string message;
};

class Machine {
public:
  // Checks the configuration (Error BadInput for what the user can fix), creates the VM, loads
  // the kernel and prepares every vCPU at its entry. No thread runs until start().
  Machine(const MachineConfig& config, dev::Console& console);

  // A machine to restore into: the VM, memory and vCPUs of `state`'s shape, nothing booted. The
  // caller fills memory() and calls restore(state) before start(). config.kernel is not used.
  // pages: how its memory is backed, for the way it will be filled (see GuestMemory::Pages).
  struct ForRestore {
    GuestMemory::Pages pages = GuestMemory::Pages::Huge;
  };
  Machine(const MachineConfig& config, dev::Console& console, ForRestore restore);
  // The same, into memory the caller made (of config.memory bytes): memory a standby prepared.
  Machine(const MachineConfig& config, dev::Console& console, GuestMemory memory);
  ~Machine();

  const MachineConfig& config() const { return config_; }
  // The command line the guest gets: config().cmdline plus a virtio_mmio.device= word per device.
  std::string guestCmdline() const;
  GuestMemory& memory() { return memory_; }
  // The virtio disks, in config().disks order.
  size_t diskCount() const { return disks_.size(); }
  dev::virtio::Blk& disk(size_t index) { return *disks_.at(index); }

  void start();
  // When start() let the vCPUs go (by this host's clock).
  std::chrono::system_clock::time_point startedAt() const { return startedAt_; }
  // Optional, before restore() and start(), for a machine made ForRestore: does ahead what they
  // would do inside a downtime (a migration target calls it while pages arrive). Creates the
  // threads start() would, the vCPUs parked before their first run and devices not yet served, so
  // that start() only lets them go; reads each vCPU's initial state, so that restore() sets only
  // what differs from it. Nothing is announced to the network before start().
  void prepareStart();
  // Parks every vCPU and returns once all are parked. Idempotent. PauseFor::Capture: each vCPU's
  // thread then saves its vCPU's state while the caller goes on (with the final pages, say), and
  // the next capture() takes those saves; a later one in the same pause (a guest held paused over
  // several epochs) reads the vCPUs again, since in-kernel timers may have raised interrupts.
  enum class PauseFor { Holding, Capture };
  void pause(PauseFor why = PauseFor::Holding);
  void resume();
  bool paused() const { return paused_; }
  // True once the run has ended (powered off, faulted or stopped).
  bool exited() const {
    std::lock_guard lock(exitMutex_);
    return exit_.has_value();
  }

  // The whole state but memory, in capture order: devices, then vCPUs, then the VM's irqchip,
  // PIT and clock. The machine is paused.
  MachineState capture();
  // Puts state into a machine made ForRestore that has not started.
  void restore(const MachineState& state);

  // What a restore of this machine's state needs of another machine (compared with a standby's).
  MachineShape shape() const;

  // Everything the guest shows outside passes this gate; the replicator holds and releases it.
  OutputGate& outputGate() { return gate_; }
  // Output a standby was sent and emits itself after a takeover, through the gate to the sink of
  // its channel. False for a channel this machine does not have.
  bool emitOutput(const HeldOutput& output);

  // Dirty logging on (once) and the tracker that reads it; stopDirtyTracking() switches it off.
  DirtyTracker& startDirtyTracking();
  void stopDirtyTracking();

  // Where the guest ran when it left to the VMM: exits (port I/O, MMIO, ...) taken at CPL 3, where
  // kvm_pvm runs guest code natively, and at CPL 0, where it emulates it (DESIGN.md, "The guest").
  struct Privilege {
    uint64_t userExits = 0, kernelExits = 0;
    std::vector<int> lastCpl;  // per vCPU, -1 before its first exit
  };
  Privilege privilege() const;

  // Auto-converge: the vCPUs get percent% less of their time (0 ends the throttling).
  void throttle(unsigned percent);
  unsigned throttlePercent() const;

  // Ends the run; the exit becomes Stopped unless the guest already ended it.
  void stop();
  // How the run ended, once it has (without waiting for the vCPU threads, unlike wait()).
  std::optional<MachineExit> exitReason() const {
    std::lock_guard lock(exitMutex_);
    return exit_;
  }
  // Blocks until the guest powers off, faults, or stop() is called; joins the vCPU threads.
  MachineExit wait();
  // A descriptor that becomes readable when the machine has ended (for poll()).
  int exitFd() const { return exitSignal_.fd(); }

private:
  // The public constructors end here: image is the kernel to boot, or nullopt to restore; memory
  // the caller made, or nullopt for new memory backed as pages says.
  Machine(const MachineConfig& config, dev::Console& console, std::optional<ElfImage> image,
          std::optional<GuestMemory> memory, GuestMemory::Pages pages);
  void createVcpusAndDevices();
  void createThreads(VcpuRunner::Start how);
  bool handleExit(kvm::Vcpu& vcpu);
  // How virtio device `index` raises its interrupt (IOAPIC pin 16 + index), and ends the idle of
  // a guest that polls.
  std::function<void()> raiserFor(size_t index);
  void finish(MachineExit exit);  // first caller wins; asks every vCPU to stop

  MachineConfig config_;
  dev::Console& console_;
  OutputGate gate_;  // between the devices and the outside world (held while protected)
  ConsoleSink consoleSink_{console_};
  GatedConsole gatedConsole_{gate_, consoleSink_};
  kvm::System system_;
  std::optional<ElfImage> image_;  // absent when restoring
  kvm::Vm vm_;
  GuestMemory memory_;
  std::vector<std::unique_ptr<kvm::Vcpu>> vcpus_;
  std::vector<uint32_t> msrIndices_;  // the MSRs capture() saves
  std::chrono::system_clock::time_point startedAt_;
  bool savedAtPause_ = false;         // the vCPU threads saved their state as they parked, not yet captured

  dev::PioBus pio_;
  dev::Serial serial_;
  dev::ExitPort exitPort_;
  dev::IdlePort idlePort_;
  dev::MmioBus mmio_;
  std::vector<std::unique_ptr<dev::virtio::Blk>> disks_;
  std::vector<std::shared_ptr<dev::Tap>> taps_;
  std::vector<std::unique_ptr<TapSink>> tapSinks_;  // behind the gate, one per tap
  std::vector<std::unique_ptr<dev::virtio::Net>> nets_;
  std::vector<std::unique_ptr<dev::virtio::Transport>> transports_;  // one per virtio device
  IoThread io_;
  std::unique_ptr<DirtyTracker> dirty_;

  // Per vCPU, written by its thread at each exit (Privilege).
  struct ExitCounts {
    std::atomic<uint64_t> user{0}, kernel{0};
    std::atomic<int> lastCpl{-1};
  };
  std::unique_ptr<ExitCounts[]> exitCounts_;

  std::vector<std::unique_ptr<VcpuRunner>> runners_;  // after the devices: threads stop first
  std::unique_ptr<VcpuThrottle> throttle_;            // after the runners it naps: ends first
  bool started_ = false;
  bool paused_ = false;
  mutable std::mutex exitMutex_;
  std::optional<MachineExit> exit_;
  EventFd exitSignal_;
};

// Checks what the user asked for against this host and reads the kernel, without creating a VM;
// throws Error(BadInput) with one sentence naming the problem. Machine's constructor calls it too.
ElfImage checkMachineConfig(const MachineConfig& config, const kvm::System& system);

// Host memory the kernel reports available now (MemAvailable), in bytes.
uint64_t hostAvailableMemory();

}  // namespace tandem
