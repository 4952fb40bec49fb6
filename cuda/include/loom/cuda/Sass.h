//===- Sass.h - SASS loop analysis of CUBINs (nvdisasm output) --*- C++ -*-===//
//
// What a GPU will do with a kernel is largely fixed by its machine code. This
// parses `nvdisasm -c` text of a CUBIN, finds the loops (a backward branch
// closes one: its target to the branch), picks the main loop (the innermost
// loop holding tensor-core instructions, the one with the most), and counts
// its instructions per iteration by class. Counts are static and per warp:
// every warp is assumed to issue each instruction of the loop once per
// iteration, nested loops times their trip count when it is a compile-time
// constant (an immediate start, step and bound), else once. Work that a
// branch on the warp index skips is therefore counted for every warp: for
// such kernels the static count is an upper bound (SassLoop::exact says so).
//
// Disassembly needs nvdisasm (PyPI nvidia-cuda-nvdisasm, see
// scripts/install-deps.sh); the parser and the counts do not.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_CUDA_SASS_H
#define LOOM_CUDA_SASS_H

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom::cuda::sass {

/// Instruction classes of the loop table, in table order.
enum class InstrClass {
  Mma,        ///< HMMA/IMMA/DMMA/HGMMA: tensor core
  Ldsm,       ///< LDSM: ldmatrix
  Shared,     ///< LDS/STS/ATOMS
  Ldgsts,     ///< LDGSTS: cp.async global -> shared
  Global,     ///< LDG/STG/RED/ATOMG and generic LD/ST
  Barrier,    ///< BAR (CTA barriers)
  Shuffle,    ///< SHFL
  Mufu,       ///< MUFU: ex2, rcp, ...
  Conversion, ///< F2F, F2FP, I2F, F2I, I2I, FRND, ...
  Local,      ///< LDL/STL: local memory (spills, indexed arrays)
  IntAddr,    ///< IMAD, IADD3, LEA, SHF, LOP3, ISETP, MOV, SEL, uniform ops ...
  Fp32,       ///< FFMA, FMUL, FADD, FMNMX, FSETP, FSEL, HFMA2 ...
  Control,    ///< BRA, BSSY, BSYNC, WARPSYNC, CALL, EXIT, NOP ...
  Other,      ///< DEPBAR, LDGDEPBAR, MEMBAR, VOTE, S2R ...
};
constexpr int kNumClasses = static_cast<int>(InstrClass::Other) + 1;

/// Short column name ("MMA", "LDSM", "LDS/STS", ...).
const char *className(InstrClass c);

/// The class of an opcode with modifiers, e.g. "HMMA.16816.F32.BF16".
InstrClass classify(const std::string &opcode);

struct Instruction {
  uint64_t offset = 0;
  std::string predicate; ///< "@!P0" or empty
  std::string opcode;    ///< with modifiers: "LDSM.16.M88.4"
  std::string operands;  ///< the rest, without the ';'
  /// A label operand (`(.L_x_3)`), for branches and calls.
  std::optional<std::string> target;
};

struct Function {
  std::string name;
  int registers = -1; ///< from .sectioninfo SHI_REGISTERS, -1 if absent
  std::vector<Instruction> instructions;
  /// Label -> index of the instruction it precedes.
  std::vector<std::pair<std::string, size_t>> labels;
  std::optional<size_t> labelIndex(const std::string &label) const;
};

/// Parses `nvdisasm -c` (optionally -g) text: one Function per .text
/// section. Throws loom::Error(InvalidArgument) for text with no
/// instructions or an instruction line it cannot read (naming the line).
std::vector<Function> parseDisassembly(const std::string &text);

using ClassCounts = std::array<double, kNumClasses>;

struct SassLoop {
  size_t begin = 0, end = 0; ///< instruction indices, inclusive
  int depth = 0;             ///< 0: outermost
  /// Per warp per iteration, nested loops weighted by their trip counts.
  ClassCounts perWarp{};
  /// Trip count when start, step and bound are immediates; else unknown.
  std::optional<int64_t> tripCount;
  /// False when a nested loop's trip count is unknown (counted once).
  bool exact = true;
  double total() const;
  double nonMma() const { return total() - perWarp[0]; }
  double mma() const { return perWarp[0]; }
};

/// Every loop of `f`, sorted by begin; back edges to one target merge.
std::vector<SassLoop> findLoops(const Function &f);

/// The innermost loop with MMA instructions that has the most of them (per
/// warp per iteration, nested loops included); nullopt when no loop has one.
std::optional<SassLoop> mainLoop(const Function &f);

/// Shared-memory wavefronts per warp per iteration, estimated from the
/// loop's LDSM/LDS/STS/LDGSTS widths as if conflict-free (an x4 ldmatrix or
/// a 128-bit access: 4). A lower bound: bank conflicts add wavefronts.
double sharedWavefrontsEstimate(const Function &f, const SassLoop &loop);

/// Global bytes requested per warp per iteration (LDG/STG/LDGSTS widths x
/// 32 lanes), as if every lane were active.
double globalBytesEstimate(const Function &f, const SassLoop &loop);

/// The nvdisasm to use: $LOOM_NVDISASM, else `nvdisasm` on PATH, else the
/// analysis venv of scripts/install-deps.sh ($LOOM_ANALYSIS_VENV or
/// ~/.local/share/loom/analysis-venv). nullopt with *why set when none is
/// found.
std::optional<std::string> findNvdisasm(std::string *why);

/// Runs `nvdisasm -c` on `cubin`. Throws loom::Error(Internal) with its
/// output when it fails.
std::string disassemble(const std::vector<uint8_t> &cubin, const std::string &nvdisasm);

} // namespace loom::cuda::sass

#endif
