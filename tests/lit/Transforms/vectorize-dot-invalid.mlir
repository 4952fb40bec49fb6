// RUN: loom-opt %s --loom-vectorize-dot="rows=4 lanes=12" --verify-diagnostics

// expected-error @+1 {{loom-vectorize-dot: rows (4) must be >= 1 and lanes (12) a power of two}}
func.func @f() {
  return
}
