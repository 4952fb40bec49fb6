// RUN: loom-opt %s --loom-vectorize-elementwise="lanes=12" --verify-diagnostics

// expected-error @below {{loom-vectorize-elementwise: lanes (12) must be a power of two}}
func.func @bad_lanes() {
  return
}
