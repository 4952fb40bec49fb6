//===- Output.h - files the loom CLI writes ---------------------*- C++ -*-===//
//
// Every output path is checked before any compute (so a missing directory
// fails in milliseconds, not after minutes of work) and written atomically:
// the bytes go to a temporary file beside the target, renamed over it once
// complete, so no failure leaves a partial or half-updated set of files.
// Errors are loom::Error(InvalidArgument) naming the option, the path and
// the reason (errno).
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_TOOLS_LOOM_OUTPUT_H
#define LOOM_TOOLS_LOOM_OUTPUT_H

#include <string>
#include <utility>
#include <vector>

namespace loom::cli {

/// An output file: `option` (e.g. "--out") names it in errors.
struct OutputPath {
  std::string option, path;
};

/// Checks that every path can be written (its directory exists and takes
/// new files, the path is not a directory nor a read-only file) and that no
/// two options name the same file; throws "<command>: cannot write <option>
/// '<path>': <reason>" otherwise. Nothing is left on disk.
void checkOutputs(const std::string &command, const std::vector<OutputPath> &outputs);

/// A file written under a temporary name beside its path; commit() renames
/// it into place. Destroyed uncommitted (an error on the way), the
/// temporary is removed and the path untouched.
class AtomicFile {
public:
  AtomicFile(std::string command, OutputPath output);
  ~AtomicFile();
  AtomicFile(const AtomicFile &) = delete;
  AtomicFile &operator=(const AtomicFile &) = delete;
  AtomicFile(AtomicFile &&other) noexcept;

  void write(const void *data, size_t size);
  /// Flushes, closes and renames the file into place.
  void commit();
  const std::string &path() const { return output_.path; }

private:
  [[noreturn]] void fail(int error) const;
  std::string command_;
  OutputPath output_;
  std::string temp_;
  int fd_ = -1;
};

/// Writes `files` (path and bytes) all or nothing: every temporary is
/// complete before the first rename.
void writeOutputs(const std::string &command,
                  std::vector<std::pair<OutputPath, std::string>> files);

} // namespace loom::cli

#endif
