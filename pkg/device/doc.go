// Package device is Mosaic's allocation protocol: the one place that defines
// what the scheduler, the node agent and the enforcer say to each other.
//
//   - Inventory: what a node's agent publishes on its Node object
//     (annotation mosaic.io/devices): its cards and its sharing config.
//   - Request: what a container asks for, parsed from HAMi-compatible
//     resource names (nvidia.com/gpu, nvidia.com/gpumem, huawei.com/<Model>, ...).
//   - Allocation: the exact cards and shares the scheduler chose, written on
//     the pod once (annotation mosaic.io/allocation) in the same API write
//     that binds it to the node.
//   - Limits: the per-container file the node agent hands the enforcer.
//
// Every decoder here is strict: malformed input is an error naming the field,
// never a panic, and never silently read as something else.
package device
