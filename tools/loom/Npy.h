//===- Npy.h - NumPy .npy files of float32 ----------------------*- C++ -*-===//
//
// Reads format versions 1.0 and 2.0 and writes 1.0, for little-endian
// float32 C-order arrays only ('<f4', fortran_order False). Any other dtype
// or order, a bad magic or header, or a truncated file is a
// loom::Error(InvalidArgument) whose message starts with the file's path.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_TOOLS_LOOM_NPY_H
#define LOOM_TOOLS_LOOM_NPY_H

#include <cstdint>
#include <string>
#include <vector>

namespace loom::cli {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data; ///< C order; size is the product of shape.
};

NpyArray readNpy(const std::string &path);
class AtomicFile;
/// Writes the array to `file` (Output.h; the caller commits it).
void writeNpy(AtomicFile &file, const std::vector<int64_t> &shape, const float *data);

/// "(1, 7, 2, 8)"; "(5,)" for rank 1 as Python writes it.
std::string shapeString(const std::vector<int64_t> &shape);

} // namespace loom::cli

#endif
