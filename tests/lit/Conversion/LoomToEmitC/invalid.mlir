// RUN: loom-opt %s -split-input-file -verify-diagnostics --convert-loom-to-emitc="num-threads=48"

// expected-error @+1 {{num-threads must be a positive multiple of 32 up to 1024, got 48}}
module {
  func.func @k() attributes {loom.kernel, loom.arg_names = []} {
    return
  }
}
