// Process groups for tensors on a CUDA device (one device per rank).
//
// make_device_process_group picks the transport: the NCCL group
// (loom/dist/nccl_process_group.hpp) when this build has NCCL and the device
// is a real GPU; otherwise a host-staged group, which copies each tensor to
// host memory, runs the collective on the host group (MPI) and copies the
// result back. Staging is slow (two copies per collective and no overlap with
// the device) but needs nothing beyond MPI: it serves GPUs without NCCL and
// the stand-in devices of cuda::HostEmulation, where it makes multi-rank
// device training testable on machines without a GPU.
//
// Both hold NCCL's contract: every tensor must be on the group's device, so
// a collective that passes a host tensor fails here as it would on NCCL.
#pragma once

#include <string>

#include "loom/core/device.hpp"
#include "loom/dist/process_group.hpp"

namespace loom::dist {

// The transport of a device group: NCCL where it can run, else host staging
// (automatic); NCCL or an error naming why it cannot run (nccl); host
// staging even where NCCL could run (staged: a reference, or a way around a
// broken NCCL install).
enum class DeviceTransport { automatic, nccl, staged };

// "auto", "nccl" or "staged"; another name is an error that starts with `where`.
DeviceTransport parse_device_transport(const std::string& name, const std::string& where = "device transport");
const char* device_transport_name(DeviceTransport t);
// Throws unless `t` can carry tensors on `device` in this build (nccl: a
// build with NCCL and a real GPU); names the rank.
void check_device_transport(DeviceTransport t, Device device, int rank);

// Collective over `host` (every rank passes its own device).
ProcessGroupPtr make_device_process_group(const ProcessGroupPtr& host, Device device,
                                          DeviceTransport transport = DeviceTransport::automatic);

// The staged group over `host` for tensors on `device`.
ProcessGroupPtr make_host_staged_process_group(ProcessGroupPtr host, Device device);

}  // namespace loom::dist
