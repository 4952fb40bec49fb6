// RUN: loom-opt %s --loom-specialize="bind=flag=1" | FileCheck %s

// i1 arguments bind from 1/0/true/false.

// CHECK-LABEL: func.func @bind_bool
// CHECK-SAME: loom.specialized = {flag = true}
// CHECK: %[[T:.*]] = arith.constant true
// CHECK: return %[[T]] : i1
func.func @bind_bool(%flag: i1) -> i1 attributes {loom.kernel, loom.arg_names = ["flag"]} {
  return %flag : i1
}
