//===- SassTest.cpp - nvdisasm parsing, loops, counts; a real CUBIN -------===//

#include "TestKernels.h"

#include "loom/cuda/Nvrtc.h"
#include "loom/cuda/Sass.h"
#include "loom/Support/Error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

using namespace loom;
using namespace loom::cuda;
using namespace loom::cuda::sass;

namespace {
std::string readInput(const std::string &name) {
  std::ifstream in(std::string(LOOM_CUDA_TEST_INPUTS) + "/" + name);
  EXPECT_TRUE(in) << "missing test input " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double count(const SassLoop &l, InstrClass c) { return l.perWarp[static_cast<int>(c)]; }
} // namespace

TEST(SassClassify, OpcodesWithModifiers) {
  EXPECT_EQ(classify("HMMA.16816.F32.BF16"), InstrClass::Mma);
  EXPECT_EQ(classify("LDSM.16.MT88.4"), InstrClass::Ldsm);
  EXPECT_EQ(classify("LDS.128"), InstrClass::Shared);
  EXPECT_EQ(classify("LDGSTS.E.BYPASS.LTC128B.128"), InstrClass::Ldgsts);
  EXPECT_EQ(classify("STG.E.64"), InstrClass::Global);
  EXPECT_EQ(classify("BAR.SYNC.DEFER_BLOCKING"), InstrClass::Barrier);
  EXPECT_EQ(classify("SHFL.BFLY"), InstrClass::Shuffle);
  EXPECT_EQ(classify("MUFU.EX2"), InstrClass::Mufu);
  EXPECT_EQ(classify("F2FP.BF16.F32.PACK_AB"), InstrClass::Conversion);
  EXPECT_EQ(classify("STL.64"), InstrClass::Local);
  EXPECT_EQ(classify("IMAD.WIDE.U32"), InstrClass::IntAddr);
  EXPECT_EQ(classify("UIADD3"), InstrClass::IntAddr);
  EXPECT_EQ(classify("FMNMX"), InstrClass::Fp32);
  EXPECT_EQ(classify("BRA"), InstrClass::Control);
  EXPECT_EQ(classify("DEPBAR.LE"), InstrClass::Other);
  EXPECT_STREQ(className(InstrClass::Mma), "MMA");
}

TEST(SassParse, FunctionsLabelsRegisters) {
  std::vector<Function> fns = parseDisassembly(readInput("nested-loops.sass"));
  ASSERT_EQ(fns.size(), 2u);
  EXPECT_EQ(fns[0].name, "nested");
  EXPECT_EQ(fns[0].registers, 40);
  EXPECT_EQ(fns[0].instructions.size(), 28u);
  EXPECT_EQ(fns[0].instructions[9].predicate, "@!P0");
  EXPECT_EQ(fns[0].instructions[9].opcode, "BRA");
  EXPECT_EQ(fns[0].instructions[9].target, std::optional<std::string>(".L_x_37"));
  EXPECT_EQ(fns[0].labelIndex(".L_x_37"), std::optional<size_t>(3));
  EXPECT_EQ(fns[1].name, "straight");
  EXPECT_EQ(fns[1].registers, 8);
  EXPECT_FALSE(mainLoop(fns[1]).has_value());
}

TEST(SassParse, RejectsTextWithoutInstructions) {
  try {
    parseDisassembly("hello\nworld\n");
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("has no instructions"), std::string::npos) << e.what();
  }
  try {
    parseDisassembly("\t.section\t.text.k,\"ax\"\n        /*0000*/  garbage\n");
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("line 2 is not an instruction"), std::string::npos)
        << e.what();
  }
}

TEST(SassLoops, NestedTripCountsAndMainLoop) {
  Function f = parseDisassembly(readInput("nested-loops.sass"))[0];
  std::vector<SassLoop> loops = findLoops(f);
  ASSERT_EQ(loops.size(), 4u);
  // The atom loop [1, 13] holds the k loop [3, 9].
  const SassLoop &outer = loops[0], &inner = loops[1], &tail = loops[2];
  EXPECT_EQ(outer.begin, 1u);
  EXPECT_EQ(outer.end, 13u);
  EXPECT_EQ(inner.begin, 3u);
  EXPECT_EQ(inner.depth, 1);
  EXPECT_EQ(inner.tripCount, std::optional<int64_t>(8)); // 0x10 .. 0x80 step 0x10
  EXPECT_EQ(outer.tripCount, std::optional<int64_t>(2)); // -12, -4 (compare first)
  EXPECT_FALSE(tail.tripCount.has_value());             // register bound
  EXPECT_TRUE(outer.exact);
  EXPECT_EQ(inner.total(), 7);
  EXPECT_EQ(outer.total(), 6 + 8 * 7);
  EXPECT_EQ(count(outer, InstrClass::Mma), 8);
  EXPECT_EQ(count(outer, InstrClass::Ldsm), 16);
  EXPECT_EQ(count(outer, InstrClass::IntAddr), 4 + 8 * 3);
  EXPECT_EQ(count(outer, InstrClass::Control), 1 + 8);
  EXPECT_EQ(sharedWavefrontsEstimate(f, outer), 8 * (4 + 2) + 2);

  // The main loop loads tiles: the unrolled one, not the k loop.
  std::optional<SassLoop> main = mainLoop(f);
  ASSERT_TRUE(main.has_value());
  EXPECT_EQ(main->begin, 14u);
  EXPECT_EQ(main->end, 25u);
  EXPECT_EQ(main->mma(), 2);
  EXPECT_EQ(main->nonMma(), 10);
  for (InstrClass c : {InstrClass::Ldgsts, InstrClass::Global, InstrClass::Barrier,
                       InstrClass::Mufu, InstrClass::Conversion, InstrClass::Fp32,
                       InstrClass::Shuffle, InstrClass::Local, InstrClass::IntAddr,
                       InstrClass::Control})
    EXPECT_EQ(count(*main, c), 1) << className(c);
  EXPECT_EQ(sharedWavefrontsEstimate(f, *main), 4);  // one 128-bit cp.async
  EXPECT_EQ(globalBytesEstimate(f, *main), 512 + 256); // 16 B and 8 B per lane
}

// A real CUBIN: the tile-library-free test matmul, compiled by NVRTC and
// disassembled. Its k loop issues 16 HMMA and 8 LDSM.x4 per warp per BK.
TEST(SassCubin, MatmulMainLoop) {
  std::string why;
  auto nvdisasm = findNvdisasm(&why);
  if (!nvdisasm)
    GTEST_SKIP() << why;
  CompiledCuda out = compileCuda(test::kMatmulSource,
                                 {{test::kMmaHeaderName, test::kMmaHeader}}, {.arch = "sm_80"});
  std::vector<Function> fns = parseDisassembly(disassemble(out.cubin, *nvdisasm));
  ASSERT_EQ(fns.size(), 1u);
  EXPECT_EQ(fns[0].name, "loom_test_matmul_bf16");
  EXPECT_EQ(fns[0].registers, out.kernels.at(0).registers);
  std::optional<SassLoop> main = mainLoop(fns[0]);
  ASSERT_TRUE(main.has_value());
  // ptxas may unroll the runtime k loop; per BK step the counts are fixed.
  double steps = main->mma() / 16;
  ASSERT_GE(steps, 1);
  EXPECT_EQ(steps, std::floor(steps)) << main->mma();
  EXPECT_EQ(count(*main, InstrClass::Ldsm), 8 * steps);
  EXPECT_GE(count(*main, InstrClass::Barrier), 2 * steps);
  EXPECT_EQ(count(*main, InstrClass::Local), 0);
  EXPECT_GT(main->nonMma(), 0);
}

TEST(SassCubin, MissingDisassemblerSaysWhy) {
  const char *old = std::getenv("LOOM_NVDISASM");
  std::string saved = old ? old : "";
  setenv("LOOM_NVDISASM", "/nonexistent/nvdisasm", 1);
  std::string why;
  EXPECT_FALSE(findNvdisasm(&why).has_value());
  EXPECT_NE(why.find("/nonexistent/nvdisasm"), std::string::npos) << why;
  if (old)
    setenv("LOOM_NVDISASM", saved.c_str(), 1);
  else
    unsetenv("LOOM_NVDISASM");
}
