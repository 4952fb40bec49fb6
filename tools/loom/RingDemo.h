//===- RingDemo.h - the ring attention part of loom demo --------*- C++ -*-===//
#ifndef LOOM_TOOLS_LOOM_RINGDEMO_H
#define LOOM_TOOLS_LOOM_RINGDEMO_H

namespace loom::cli {
/// Runs and checks the ring attention demo; true when every check passed.
bool ringDemo();
} // namespace loom::cli

#endif
