//===- Nvdisasm.cpp - find and run the CUDA disassembler ------------------===//
//
// nvdisasm is an analysis dependency, not a build one: scripts/install-deps.sh
// installs it from PyPI (nvidia-cuda-nvdisasm) into a venv, and everything
// that needs it says why it skips when it is missing.
//
//===----------------------------------------------------------------------===//
#include "loom/cuda/Sass.h"

#include "loom/Support/Error.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace loom::cuda::sass {
namespace {
bool executable(const fs::path &p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

/// nvdisasm inside a venv: the wheel puts it under nvidia/cu*/bin.
std::optional<std::string> inVenv(const fs::path &venv) {
  std::error_code ec;
  fs::path lib = venv / "lib";
  if (!fs::is_directory(lib, ec))
    return std::nullopt;
  for (const auto &py : fs::directory_iterator(lib, ec)) {
    fs::path nvidia = py.path() / "site-packages" / "nvidia";
    if (!fs::is_directory(nvidia, ec))
      continue;
    for (const auto &cu : fs::directory_iterator(nvidia, ec))
      for (const char *sub : {"bin/nvdisasm", "cuda_nvdisasm/bin/nvdisasm"})
        if (executable(cu.path() / sub))
          return (cu.path() / sub).string();
  }
  return std::nullopt;
}

std::string shellQuote(const std::string &s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
} // namespace

std::optional<std::string> findNvdisasm(std::string *why) {
  if (const char *env = std::getenv("LOOM_NVDISASM"); env && *env) {
    if (executable(env))
      return std::string(env);
    if (why)
      *why = std::string("$LOOM_NVDISASM '") + env + "' is not an executable file";
    return std::nullopt;
  }
  if (const char *path = std::getenv("PATH")) {
    std::string p = path;
    for (size_t start = 0; start <= p.size();) {
      size_t end = p.find(':', start);
      std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!dir.empty() && executable(fs::path(dir) / "nvdisasm"))
        return (fs::path(dir) / "nvdisasm").string();
      if (end == std::string::npos)
        break;
      start = end + 1;
    }
  }
  fs::path venv;
  if (const char *env = std::getenv("LOOM_ANALYSIS_VENV"); env && *env)
    venv = env;
  else if (const char *home = std::getenv("HOME"); home && *home)
    venv = fs::path(home) / ".local/share/loom/analysis-venv";
  if (!venv.empty())
    if (auto found = inVenv(venv))
      return found;
  if (why)
    *why = "nvdisasm not found ($LOOM_NVDISASM, PATH, or the analysis venv " +
           (venv.empty() ? std::string("(no $HOME)") : venv.string()) +
           "; scripts/install-deps.sh installs it)";
  return std::nullopt;
}

std::string disassemble(const std::vector<uint8_t> &cubin, const std::string &nvdisasm) {
  fs::path dir = fs::temp_directory_path();
  std::string tmpl = (dir / "loom-sass-XXXXXX").string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0)
    throw Error(ErrorCode::Internal, "cannot create a temporary file in " + dir.string());
  ::close(fd);
  struct Remove {
    std::string path;
    ~Remove() { std::remove(path.c_str()); }
  } cleanup{tmpl};
  {
    std::ofstream out(tmpl, std::ios::binary);
    out.write(reinterpret_cast<const char *>(cubin.data()),
              static_cast<std::streamsize>(cubin.size()));
    if (!out)
      throw Error(ErrorCode::Internal, "cannot write " + tmpl);
  }
  std::string command = shellQuote(nvdisasm) + " -c " + shellQuote(tmpl) + " 2>&1";
  FILE *pipe = ::popen(command.c_str(), "r");
  if (!pipe)
    throw Error(ErrorCode::Internal, "cannot run " + nvdisasm);
  std::string text;
  char buffer[1 << 16];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe))
    text.append(buffer, n);
  int status = ::pclose(pipe);
  if (status != 0)
    throw Error(ErrorCode::Internal,
                nvdisasm + " failed (status " +
                    std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : status) +
                    "): " + text.substr(0, 2000));
  return text;
}

} // namespace loom::cuda::sass
