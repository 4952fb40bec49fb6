//===- TypedBuffers.h - test tensors in f32, f16 or bf16 --------*- C++ -*-===//
#ifndef LOOM_TESTS_TYPEDBUFFERS_H
#define LOOM_TESTS_TYPEDBUFFERS_H

#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Reference.h"

#include <cstdint>
#include <vector>

/// Fresh random inputs in `dtype` (f32 values, or f16/bf16 bits) and the
/// values the kernel sees after rounding, as doubles for the references.
struct TypedInput {
  loom::DType dtype;
  std::vector<float> f32;
  std::vector<uint16_t> half;
  std::vector<double> seen;
  TypedInput(size_t n, loom::DType dtype, float lo = -1.5f, float hi = 1.5f) : dtype(dtype) {
    namespace ref = loom::ops::ref;
    f32 = ref::randomVector(n, lo, hi);
    std::vector<float> rounded = f32;
    if (dtype == loom::DType::F16) {
      half = ref::toF16Bits(f32);
      rounded = ref::roundToF16(f32);
    } else if (dtype == loom::DType::BF16) {
      half = ref::toBf16Bits(f32);
      rounded = ref::roundToBf16(f32);
    }
    seen = ref::toDouble(rounded);
  }
  const void *data() const {
    return dtype == loom::DType::F32 ? static_cast<const void *>(f32.data()) : half.data();
  }
};

/// An output in `dtype`, poisoned (NaN in every format) before the run.
struct TypedOutput {
  loom::DType dtype;
  std::vector<float> f32;
  std::vector<uint16_t> half;
  TypedOutput(size_t n, loom::DType dtype)
      : dtype(dtype), f32(n, loom::ops::ref::poison()), half(n, 0x7fff) {}
  void *data() {
    return dtype == loom::DType::F32 ? static_cast<void *>(f32.data()) : half.data();
  }
  std::vector<float> values() const {
    if (dtype == loom::DType::F32)
      return f32;
    std::vector<float> out(half.size());
    for (size_t i = 0; i < half.size(); ++i)
      out[i] = dtype == loom::DType::F16 ? loom::halfToFloat(half[i]) : loom::bf16ToFloat(half[i]);
    return out;
  }
};

#endif
