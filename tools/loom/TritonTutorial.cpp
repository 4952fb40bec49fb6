//===- TritonTutorial.cpp - Triton's tutorial CUBINs for loom profile -----===//
//
// Triton is a bench-time comparison, never a dependency: a Python helper
// compiles its tutorial kernel and writes one line per config,
//   kernel label=L name=N pass=P warps=W block_m=M block_n=N regs=R
//          spills=S shared=B cubin=PATH
// with `source TEXT` (which triton, which file) and `note TEXT` (a config
// that did not compile) beside them, or `unavailable REASON` (exit 0).
// Anything else is reported as the reason when no kernel came back.
//
//===----------------------------------------------------------------------===//
#include "Profile.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#ifndef LOOM_SOURCE_DIR
#define LOOM_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

namespace loom::cli {
namespace {
std::string quote(const std::string &s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string envOr(const char *name, const std::string &fallback) {
  const char *v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}
} // namespace

std::string tritonBenchPython() {
  if (const char *v = std::getenv("LOOM_BENCH_PYTHON"); v && *v)
    return v;
  std::string venv = envOr("LOOM_TRITON_VENV", envOr("HOME", "/nonexistent") +
                                                   "/.local/share/loom/triton-venv");
  std::string python = venv + "/bin/python";
  return ::access(python.c_str(), X_OK) == 0 ? python : "python3";
}

TritonResult compileTritonTutorial(const std::string &pass, const std::string &arch,
                                   const TritonShape &shape, const std::string &dtype,
                                   bool causal, bool firstOnly) {
  TritonResult result;
  std::string python = tritonBenchPython();
  std::string helper = envOr("LOOM_TRITON_HELPER",
                             std::string(LOOM_SOURCE_DIR) + "/bench/triton/compile_tutorial.py");
  if (!fs::exists(helper)) {
    result.why = "helper " + helper + " not found (set $LOOM_TRITON_HELPER)";
    return result;
  }
  char dirTemplate[] = "/tmp/loom-triton-XXXXXX";
  if (!::mkdtemp(dirTemplate)) {
    result.why = "cannot create a temporary directory";
    return result;
  }
  std::string dir = dirTemplate;
  std::string command = quote(python) + " " + quote(helper) + " --pass " + pass + " --arch " +
                        arch + " --head-dim " + std::to_string(shape.headDim) + " --batch " +
                        std::to_string(shape.batch) + " --heads " + std::to_string(shape.heads) +
                        " --seqlen " + std::to_string(shape.seqlen) + " --dtype " + dtype +
                        (causal ? " --causal" : "") + (firstOnly ? " --first-only" : "") + " --out " + quote(dir) + " 2>&1";
  FILE *pipe = ::popen(command.c_str(), "r");
  std::string text;
  if (pipe) {
    char buffer[4096];
    while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe))
      text.append(buffer, n);
  }
  int status = pipe ? ::pclose(pipe) : -1;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("unavailable ", 0) == 0) {
      result.why = line.substr(12);
      break;
    }
    if (line.rfind("source ", 0) == 0)
      result.source = line.substr(7);
    if (line.rfind("note ", 0) == 0)
      result.notes.push_back(line.substr(5));
    if (line.rfind("kernel ", 0) != 0)
      continue;
    std::map<std::string, std::string> kv;
    std::istringstream words(line.substr(7));
    std::string word;
    while (words >> word)
      if (auto eq = word.find('='); eq != std::string::npos)
        kv[word.substr(0, eq)] = word.substr(eq + 1);
    TritonKernel k;
    k.label = kv["label"];
    for (char &c : k.label)
      if (c == '_')
        c = ' ';
    k.name = kv["name"];
    k.pass = kv["pass"];
    try {
      k.warps = std::stoi(kv.at("warps"));
      k.blockM = std::stoll(kv.at("block_m"));
      k.blockN = std::stoll(kv.at("block_n"));
      k.registers = std::stoi(kv.at("regs"));
      k.spillBytes = std::stoi(kv.at("spills"));
      k.sharedBytes = std::stoll(kv.at("shared"));
    } catch (const std::exception &) {
      result.why = "cannot read the helper's line '" + line + "'";
      result.kernels.clear();
      break;
    }
    std::ifstream in(kv["cubin"], std::ios::binary);
    k.cubin.assign(std::istreambuf_iterator<char>(in), {});
    if (k.cubin.empty()) {
      result.why = "the helper's CUBIN " + kv["cubin"] + " is missing or empty";
      result.kernels.clear();
      break;
    }
    result.kernels.push_back(std::move(k));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (result.why.empty() && result.kernels.empty() && !result.notes.empty())
    result.why = "no config compiled: " + result.notes.front();
  else if (result.why.empty() && result.kernels.empty())
    result.why = python + " " + helper + " failed (status " + std::to_string(status) +
                 "): " + text.substr(0, 1500);
  result.available = result.why.empty();
  return result;
}

} // namespace loom::cli
