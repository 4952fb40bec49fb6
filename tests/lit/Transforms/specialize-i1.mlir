// RUN: loom-opt %s --loom-specialize="bind=flag=1" | FileCheck %s

// KNOWN BUG: parseScalar range-checks i1 as a signed 1-bit integer, so only
// 0 and -1 are accepted: `flag=1` fails with "value '1' for argument 'flag'
// is not a valid 'i1'" while `flag=-1` binds true. Remove the XFAIL once 1
// binds true.
// XFAIL: *

// CHECK-LABEL: func.func @bind_bool
// CHECK-SAME: loom.specialized = {flag = true}
// CHECK: %[[T:.*]] = arith.constant true
// CHECK: return %[[T]] : i1
func.func @bind_bool(%flag: i1) -> i1 attributes {loom.kernel, loom.arg_names = ["flag"]} {
  return %flag : i1
}
