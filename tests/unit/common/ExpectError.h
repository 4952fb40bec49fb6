//===- ExpectError.h - asserting on loom::Error text ------------*- C++ -*-===//
#ifndef LOOM_TESTS_EXPECTERROR_H
#define LOOM_TESTS_EXPECTERROR_H

#include "loom/Support/Error.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

/// Runs `fn`, which must throw loom::Error with exactly `message` and `code`.
inline void expectLoomError(const std::function<void()> &fn, const std::string &message,
                            loom::ErrorCode code = loom::ErrorCode::InvalidArgument) {
  try {
    fn();
  } catch (const loom::Error &e) {
    EXPECT_EQ(std::string(e.what()), message);
    EXPECT_EQ(loom::errorCodeName(e.code()), std::string(loom::errorCodeName(code)));
    return;
  }
  ADD_FAILURE() << "expected loom::Error: " << message;
}

#endif
