// RUN: loom-opt %s -verify-diagnostics --convert-loom-to-emitc

// expected-error @+1 {{no function with the 'loom.kernel' attribute}}
module {
  func.func @helper() {
    return
  }
}
