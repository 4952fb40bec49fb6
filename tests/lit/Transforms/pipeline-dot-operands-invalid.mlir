// RUN: loom-opt %s --loom-pipeline-dot-operands="num-stages=0" -verify-diagnostics

// A pipeline needs a slot per stage: zero stages is an error, not a no-op.

// expected-error @+1 {{num-stages must be at least 1, got 0}}
func.func @k() {
  return
}
