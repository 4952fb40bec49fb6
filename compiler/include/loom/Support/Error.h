//===- Error.h - user-facing error values -----------------------*- C++ -*-===//
//
// Errors a user can cause (bad shapes, dtypes, arguments, missing devices)
// are thrown as loom::Error with a category and a one-line message naming the
// offending value. Internal invariants are asserts, never loom::Error.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_SUPPORT_ERROR_H
#define LOOM_SUPPORT_ERROR_H

#include <stdexcept>
#include <string>

namespace loom {

enum class ErrorCode {
  InvalidArgument,   ///< Bad shape, dtype, value or option from the caller.
  Unsupported,       ///< Valid request Loom does not implement (arch, dtype).
  CompileFailed,     ///< A compiler stage rejected the kernel.
  DeviceUnavailable, ///< No driver or device for the requested backend.
  CommTimeout,       ///< A collective or transfer exceeded its deadline.
  PeerFailed,        ///< Another rank reported failure.
  Internal,          ///< A bug in Loom; please report.
};

const char *errorCodeName(ErrorCode code);

class Error : public std::runtime_error {
public:
  Error(ErrorCode code, const std::string &message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

private:
  ErrorCode code_;
};

inline const char *errorCodeName(ErrorCode code) {
  switch (code) {
  case ErrorCode::InvalidArgument: return "invalid argument";
  case ErrorCode::Unsupported: return "unsupported";
  case ErrorCode::CompileFailed: return "compile failed";
  case ErrorCode::DeviceUnavailable: return "device unavailable";
  case ErrorCode::CommTimeout: return "communication timeout";
  case ErrorCode::PeerFailed: return "peer failed";
  case ErrorCode::Internal: return "internal error";
  }
  return "unknown";
}

} // namespace loom

#endif
