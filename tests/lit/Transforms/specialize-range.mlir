// RUN: loom-opt %s -split-input-file -verify-diagnostics --loom-specialize="bind=scale=1e100,flag=2"

// Values that do not fit the argument's type are rejected, never rounded to
// infinity or truncated.

// expected-error @+1 {{value '1e100' for argument 'scale' is not a valid 'f32'}}
func.func @float_overflow(%scale: f32) attributes {loom.kernel, loom.arg_names = ["scale"]} {
  return
}

// -----

// expected-error @+1 {{value '2' for argument 'flag' is not a valid 'i1'}}
func.func @bad_bool(%scale: f64, %flag: i1) attributes {loom.kernel, loom.arg_names = ["scale", "flag"]} {
  return
}
