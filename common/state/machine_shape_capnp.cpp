#include "state/machine_shape_capnp.hpp"

namespace tandem {

void toCapnp(const MachineShape& shape, schema::MachineShape::Builder out) {
  auto devices = out.initDevices(static_cast<unsigned>(shape.devices.size()));
  for (unsigned i = 0; i < shape.devices.size(); ++i) {
    const auto& d = shape.devices[i];
    devices[i].setType(d.deviceId);
    devices[i].setFeatures(d.features);
    devices[i].setQueues(d.queues);
    devices[i].setConfig(capnp::Data::Reader(d.config.data(), d.config.size()));
  }
  out.setCpuid(capnp::Data::Reader(shape.cpuid.data(), shape.cpuid.size()));
  auto msrs = out.initMsrs(static_cast<unsigned>(shape.msrs.size()));
  for (unsigned i = 0; i < shape.msrs.size(); ++i) msrs.set(i, shape.msrs[i]);
}

MachineShape fromCapnp(schema::MachineShape::Reader in) {
  MachineShape shape;
  for (auto d : in.getDevices())
    shape.devices.push_back({d.getType(), d.getFeatures(), d.getQueues(), {d.getConfig().begin(), d.getConfig().end()}});
  shape.cpuid.assign(in.getCpuid().begin(), in.getCpuid().end());
  for (uint32_t msr : in.getMsrs()) shape.msrs.push_back(msr);
  return shape;
}

}  // namespace tandem
