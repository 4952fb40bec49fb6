//===- ExpectError.h - asserting on loom::Error text ------------*- C++ -*-===//
#ifndef LOOM_TESTS_EXPECTERROR_H
#define LOOM_TESTS_EXPECTERROR_H

#include "loom/Support/Error.h"

#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
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

/// Runs `fn`, which must throw loom::Error with `code` and a message that
/// contains every string of `parts`. Returns the message ("" if none).
inline std::string expectLoomErrorContaining(const std::function<void()> &fn, loom::ErrorCode code,
                                             std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const loom::Error &e) {
    std::string message = e.what();
    EXPECT_EQ(loom::errorCodeName(e.code()), std::string(loom::errorCodeName(code))) << message;
    for (const std::string &part : parts)
      EXPECT_NE(message.find(part), std::string::npos)
          << "'" << part << "' not in: " << message;
    return message;
  }
  ADD_FAILURE() << "expected loom::Error (" << loom::errorCodeName(code) << ")";
  return "";
}

#endif
