//===- DriverTest.cpp - behaviour without a CUDA driver -------------------===//

#include "loom/cuda/Driver.h"
#include "loom/Support/Error.h"

#include <gtest/gtest.h>

using namespace loom;
using namespace loom::cuda;

TEST(CudaDriver, ContextWithoutDriverThrowsDeviceUnavailable) {
  std::string why;
  if (driverAvailable(&why))
    GTEST_SKIP() << "a CUDA driver is installed (" << driverVersionString()
                 << "), so the no-driver path cannot be exercised here";
  try {
    Context ctx;
    FAIL() << "Context() succeeded without a driver";
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), ErrorCode::DeviceUnavailable);
    EXPECT_EQ(std::string(e.what()), why);
    // This machine either lacks libcuda.so.1 (the usual CI case) or has one
    // whose cuInit fails (driver without a device).
    if (why.find("dlopen") != std::string::npos)
      EXPECT_EQ(why.rfind("no CUDA driver: dlopen(libcuda.so.1) failed: ", 0), 0u) << why;
    else
      EXPECT_NE(why.find("cuInit failed"), std::string::npos) << why;
  }
  // Every wrapper goes through the same check.
  EXPECT_THROW(DeviceBuffer(16), Error);
  EXPECT_THROW(Stream(), Error);
  EXPECT_EQ(deviceCount(), 0);
  EXPECT_FALSE(why.empty());
}
