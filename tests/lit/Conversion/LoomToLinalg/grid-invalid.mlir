// RUN: loom-opt %s -split-input-file -verify-diagnostics --convert-loom-to-linalg

func.func @not_a_kernel(%a: i32, %b: i32, %c: i32, %d: i32, %e: i32, %f: i32) -> i32 {
  // expected-error @+1 {{'loom.program_id' op is only valid inside a function with the 'loom.kernel' attribute}}
  %0 = loom.program_id 0 : i32
  return %0 : i32
}
