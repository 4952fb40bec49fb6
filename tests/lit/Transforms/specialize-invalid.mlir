// RUN: loom-opt %s -split-input-file -verify-diagnostics --loom-specialize="bind=n=3.5,m=1099511627776,bad"
// RUN: not loom-opt %s --loom-specialize="bind==1" 2>&1 | FileCheck %s --check-prefix=EMPTY-NAME

// Errors of loom-specialize. The bindings apply in order and the pass stops at
// the first one that fails, so each kernel below fails on a different one:
// `n=3.5` (unknown name, pointer, not an integer), `m=2^40` (out of range of
// i32), then `bad` (no `=`). The second RUN line checks that a failing
// binding fails the whole run.

// EMPTY-NAME: error: binding '=1' is not of the form name=value

// expected-error @+1 {{kernel 'no_such_arg' has no argument named 'n'}}
func.func @no_such_arg(%x: i32) attributes {loom.kernel, loom.arg_names = ["x"]} {
  return
}

// -----

// expected-error @+1 {{cannot bind argument 'n' of type '!loom.ptr<f32>': only scalars can be bound}}
func.func @bind_pointer(%n: !loom.ptr<f32>) attributes {loom.kernel, loom.arg_names = ["n"]} {
  return
}

// -----

// expected-error @+1 {{cannot bind argument 'n' of type 'tensor<4xi32>': only scalars can be bound}}
func.func @bind_tensor(%n: tensor<4xi32>) attributes {loom.kernel, loom.arg_names = ["n"]} {
  return
}

// -----

// expected-error @+1 {{value '3.5' for argument 'n' is not a valid 'i32'}}
func.func @float_for_int(%n: i32) attributes {loom.kernel, loom.arg_names = ["n"]} {
  return
}

// -----

// expected-error @+1 {{value '1099511627776' for argument 'm' is not a valid 'i32'}}
func.func @int_out_of_range(%n: f32, %m: i32) attributes {loom.kernel, loom.arg_names = ["n", "m"]} {
  return
}

// -----

// expected-error @+1 {{binding 'bad' is not of the form name=value}}
func.func @malformed_binding(%n: f32, %m: i64) attributes {loom.kernel, loom.arg_names = ["n", "m"]} {
  return
}

// -----

// expected-error @+1 {{kernel 'no_arg_names' has no 'loom.arg_names' attribute}}
func.func @no_arg_names(%n: f32) attributes {loom.kernel} {
  return
}

// -----

// expected-error @+1 {{argument 'n' is bound twice}}
func.func @bound_twice(%n: i32) attributes {loom.kernel, loom.arg_names = ["n"], loom.specialized = {n = 4 : i32}} {
  return
}
