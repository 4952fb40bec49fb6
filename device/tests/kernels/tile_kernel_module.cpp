// The tile-layer test kernel as a separately built shared object, loaded with
// dlopen by TileKernelTest. It is deliberately not linked against
// LoomDeviceEmu: its references to the executor (threadIdx, blockIdx, the
// barriers and collectives) must resolve to the copy the process already has.
#include "kernels/tile_kernel.cuh"
