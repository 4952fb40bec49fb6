//===- Sass.cpp - parse nvdisasm text, find loops, count by class ---------===//

#include "loom/cuda/Sass.h"

#include "loom/Support/Error.h"

#include <algorithm>
#include <functional>
#include <regex>
#include <sstream>

namespace loom::cuda::sass {
namespace {

std::string baseOpcode(const std::string &opcode) {
  return opcode.substr(0, opcode.find('.'));
}

bool hasModifier(const std::string &opcode, const std::string &modifier) {
  std::string dotted = opcode + ".";
  return dotted.find("." + modifier + ".") != std::string::npos;
}

std::vector<std::string> splitOperands(const std::string &operands) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : operands) {
    if (c == '[' || c == '(')
      ++depth;
    if (c == ']' || c == ')')
      --depth;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (!cur.empty())
    out.push_back(cur);
  for (std::string &s : out) {
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
  }
  return out;
}

/// An immediate operand ("0x80", "-0x4", "RZ" as 0), or nullopt.
std::optional<int64_t> immediate(const std::string &text) {
  if (text == "RZ" || text == "SRZ")
    return 0;
  try {
    size_t used = 0;
    int64_t v = std::stoll(text, &used, 0);
    if (used == text.size())
      return v;
  } catch (const std::exception &) {
  }
  return std::nullopt;
}

/// The register an operand names without modifiers ("R44.reuse" -> "R44").
std::string registerName(const std::string &operand) {
  std::string r = operand;
  if (!r.empty() && (r[0] == '-' || r[0] == '|' || r[0] == '!'))
    r.erase(0, 1);
  return r.substr(0, r.find('.'));
}
} // namespace

const char *className(InstrClass c) {
  static const char *const names[kNumClasses] = {
      "MMA", "LDSM", "LDS/STS", "LDGSTS", "LDG/STG", "BAR", "SHFL",
      "MUFU", "CVT", "LDL/STL", "INT", "FP32", "CTRL", "OTHER"};
  return names[static_cast<int>(c)];
}

InstrClass classify(const std::string &opcode) {
  const std::string op = baseOpcode(opcode);
  auto in = [&](std::initializer_list<const char *> list) {
    return std::any_of(list.begin(), list.end(), [&](const char *s) { return op == s; });
  };
  if (in({"HMMA", "IMMA", "DMMA", "BMMA", "HGMMA", "IGMMA", "QGMMA", "BGMMA"}))
    return InstrClass::Mma;
  if (in({"LDSM", "STSM"}))
    return InstrClass::Ldsm;
  if (in({"LDS", "STS", "ATOMS", "LDSU"}))
    return InstrClass::Shared;
  if (in({"LDGSTS"}))
    return InstrClass::Ldgsts;
  if (in({"LDG", "STG", "RED", "ATOMG", "ATOM", "LD", "ST", "REDG", "UBLKCP", "UTMALDG",
          "UTMASTG"}))
    return InstrClass::Global;
  if (in({"BAR", "SYNCS"}))
    return InstrClass::Barrier;
  if (in({"SHFL"}))
    return InstrClass::Shuffle;
  if (in({"MUFU"}))
    return InstrClass::Mufu;
  if (in({"F2F", "F2FP", "I2F", "F2I", "I2I", "FRND", "I2FP", "F2IP", "DFRND"}))
    return InstrClass::Conversion;
  if (in({"LDL", "STL"}))
    return InstrClass::Local;
  if (in({"FFMA", "FMUL", "FADD", "FMNMX", "FSETP", "FSEL", "FSET", "FCHK", "FSWZADD", "HFMA2",
          "HADD2", "HMUL2", "HMNMX2", "HSETP2", "HSET2", "FFMA32I", "FMUL32I", "FADD32I",
          "DFMA", "DMUL", "DADD", "DSETP"}))
    return InstrClass::Fp32;
  if (in({"BRA", "BRX", "JMP", "JMX", "CALL", "RET", "EXIT", "BSSY", "BSYNC", "BREAK", "BMOV",
          "WARPSYNC", "NOP", "YIELD", "KILL", "BPT", "RTT", "JMXU", "BRXU", "ACQBULK",
          "ELECT", "NANOSLEEP"}))
    return InstrClass::Control;
  if (in({"IMAD", "IADD3", "IADD", "LEA", "SHF", "LOP3", "LOP", "ISETP", "IMNMX", "IABS",
          "SEL", "MOV", "PRMT", "SGXT", "BMSK", "POPC", "FLO", "BREV", "IMUL", "ISCADD",
          "VIADD", "VIMNMX", "VIADDMNMX", "IDP", "IDP4A", "PLOP3", "P2R", "R2P", "CS2R",
          "R2UR", "SHL", "SHR", "IMNMX3", "IADD32I", "LOP32I", "ISET", "BFE", "BFI"}) ||
      (op.size() > 1 && op[0] == 'U' &&
       classify(op.substr(1)) == InstrClass::IntAddr)) // uniform datapath twins
    return InstrClass::IntAddr;
  return InstrClass::Other;
}

std::optional<size_t> Function::labelIndex(const std::string &label) const {
  for (const auto &[name, index] : labels)
    if (name == label)
      return index;
  return std::nullopt;
}

std::vector<Function> parseDisassembly(const std::string &text) {
  static const std::regex instrRe(R"(^\s*/\*([0-9a-fA-F]+)\*/\s*(.*?)\s*;.*$)");
  static const std::regex labelRe(R"(^\s*([.$A-Za-z_][\w.$]*):\s*$)");
  static const std::regex sectionRe(R"(^\s*\.section\s+\.text\.([^,\s]+))");
  static const std::regex regsRe(R"(SHI_REGISTERS=(\d+))");
  static const std::regex targetRe(R"(`\(([^)]+)\))");
  std::vector<Function> out;
  std::istringstream in(text);
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    std::smatch m;
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line.compare(first, 2, "//") == 0)
      continue; // blank lines, comments: section rulers, -g line info
    if (std::regex_search(line, m, sectionRe)) {
      out.push_back({});
      out.back().name = m[1];
      continue;
    }
    if (out.empty())
      continue;
    Function &f = out.back();
    if (line.find(".sectioninfo") != std::string::npos &&
        std::regex_search(line, m, regsRe)) {
      f.registers = std::stoi(m[1]);
      continue;
    }
    if (std::regex_match(line, m, labelRe)) {
      f.labels.emplace_back(m[1], f.instructions.size());
      continue;
    }
    if (line.compare(first, 2, "/*") != 0)
      continue; // directives
    if (!std::regex_match(line, m, instrRe))
      throw Error(ErrorCode::InvalidArgument,
                  "nvdisasm output line " + std::to_string(lineNo) +
                      " is not an instruction: '" + line + "'");
    Instruction ins;
    ins.offset = std::stoull(m[1], nullptr, 16);
    std::string body = m[2];
    std::istringstream words(body);
    std::string word;
    words >> word;
    if (!word.empty() && word[0] == '@') {
      ins.predicate = word;
      words >> word;
    }
    if (word.empty())
      throw Error(ErrorCode::InvalidArgument,
                  "nvdisasm output line " + std::to_string(lineNo) + " has no opcode: '" +
                      line + "'");
    ins.opcode = word;
    std::getline(words, ins.operands);
    ins.operands.erase(0, ins.operands.find_first_not_of(" \t"));
    if (std::smatch t; std::regex_search(ins.operands, t, targetRe))
      ins.target = t[1];
    f.instructions.push_back(std::move(ins));
  }
  out.erase(std::remove_if(out.begin(), out.end(),
                           [](const Function &f) { return f.instructions.empty(); }),
            out.end());
  if (out.empty())
    throw Error(ErrorCode::InvalidArgument,
                "nvdisasm output has no instructions (expected `nvdisasm -c` text of a CUBIN)");
  return out;
}

double SassLoop::total() const {
  double t = 0;
  for (double n : perWarp)
    t += n;
  return t;
}

namespace {
bool compare(const std::string &cmp, int64_t a, int64_t b, bool isUnsigned) {
  if (isUnsigned) {
    auto ua = static_cast<uint32_t>(a), ub = static_cast<uint32_t>(b);
    return cmp == "GE" ? ua >= ub : cmp == "GT" ? ua > ub : cmp == "LT" ? ua < ub
         : cmp == "LE" ? ua <= ub : cmp == "EQ" ? ua == ub : ua != ub;
  }
  auto sa = static_cast<int32_t>(a), sb = static_cast<int32_t>(b);
  return cmp == "GE" ? sa >= sb : cmp == "GT" ? sa > sb : cmp == "LT" ? sa < sb
       : cmp == "LE" ? sa <= sb : cmp == "EQ" ? sa == sb : sa != sb;
}

/// Whether `ins` writes register `reg` as its first (destination) operand.
bool writes(const Instruction &ins, const std::string &reg) {
  auto ops = splitOperands(ins.operands);
  if (ops.empty())
    return false;
  if (registerName(ops[0]) == reg)
    return true;
  // Two-register destinations that commonly zero counters.
  if (baseOpcode(ins.opcode) == "CS2R" && reg.size() > 1 && reg[0] == 'R' &&
      ops[0].size() > 1 && ops[0][0] == 'R') {
    try {
      return std::stoi(reg.substr(1)) == std::stoi(ops[0].substr(1)) + 1;
    } catch (const std::exception &) {
    }
  }
  return false;
}

/// The trip count of the loop [b, e] when the back edge at e tests an
/// immediate bound on a counter with an immediate start and step, set at
/// or after `floor` (the enclosing loop's first instruction, or 0).
std::optional<int64_t> inferTripCount(const Function &f, size_t b, size_t e, size_t floor) {
  const Instruction &edge = f.instructions[e];
  if (edge.predicate.empty() || !edge.predicate.starts_with("@"))
    return std::nullopt;
  bool negated = edge.predicate.starts_with("@!");
  std::string pred = edge.predicate.substr(negated ? 2 : 1);
  // The last compare writing the predicate.
  std::optional<size_t> cmpAt;
  for (size_t i = e; i-- > b;) {
    auto ops = splitOperands(f.instructions[i].operands);
    if (!ops.empty() && ops[0] == pred) {
      cmpAt = i;
      break;
    }
  }
  if (!cmpAt)
    return std::nullopt;
  const Instruction &cmp = f.instructions[*cmpAt];
  static const std::regex isetp(R"(^ISETP\.(GE|GT|LT|LE|EQ|NE)(\.U32)?\.AND$)");
  std::smatch m;
  if (!std::regex_match(cmp.opcode, m, isetp) || !cmp.predicate.empty())
    return std::nullopt;
  std::string relation = m[1];
  bool isUnsigned = m[2].matched;
  auto ops = splitOperands(cmp.operands);
  if (ops.size() != 5 || ops[1] != "PT" || ops[4] != "PT")
    return std::nullopt;
  std::string counter = registerName(ops[2]);
  auto bound = immediate(ops[3]);
  if (!bound || counter.empty() || counter[0] != 'R')
    return std::nullopt;
  // Exactly one update of the counter in the loop: counter += immediate.
  std::optional<size_t> incAt;
  int64_t step = 0;
  for (size_t i = b; i <= e; ++i) {
    const Instruction &ins = f.instructions[i];
    if (!writes(ins, counter))
      continue;
    auto iops = splitOperands(ins.operands);
    std::string op = baseOpcode(ins.opcode);
    if (incAt || !ins.predicate.empty() ||
        !((op == "IADD3" && iops.size() == 4 && registerName(iops[1]) == counter &&
           iops[3] == "RZ") ||
          (op == "VIADD" && iops.size() == 3 && registerName(iops[1]) == counter)))
      return std::nullopt;
    auto s = immediate(iops[2]);
    if (!s || *s == 0)
      return std::nullopt;
    incAt = i;
    step = *s;
  }
  if (!incAt)
    return std::nullopt;
  // Its start: the last write before the loop header, an immediate move,
  // inside the enclosing loop (from `floor`), so that every entry starts
  // from it.
  std::optional<int64_t> start;
  for (size_t i = b; i-- > floor;) {
    const Instruction &ins = f.instructions[i];
    if (!writes(ins, counter))
      continue;
    auto iops = splitOperands(ins.operands);
    std::string op = baseOpcode(ins.opcode);
    if (!ins.predicate.empty())
      return std::nullopt;
    if (op == "IMAD" && ins.opcode == "IMAD.MOV.U32" && iops.size() == 4 &&
        iops[1] == "RZ" && iops[2] == "RZ")
      start = immediate(iops[3]);
    else if ((op == "MOV" && iops.size() >= 2) ||
             (op == "CS2R" && iops.size() == 2 && iops[1] == "SRZ"))
      start = op == "CS2R" ? std::optional<int64_t>(0) : immediate(iops[1]);
    break;
  }
  if (!start)
    return std::nullopt;
  int64_t v = *start;
  for (int64_t trip = 1; trip <= 1 << 20; ++trip) {
    int64_t next = v + step;
    bool taken = compare(relation, *incAt < *cmpAt ? next : v, *bound, isUnsigned);
    v = next;
    if (taken == negated)
      return trip;
  }
  return std::nullopt;
}

bool contains(const SassLoop &outer, const SassLoop &inner) {
  return &outer != &inner && outer.begin <= inner.begin && inner.end <= outer.end &&
         (outer.begin != inner.begin || outer.end != inner.end);
}
} // namespace

std::vector<SassLoop> findLoops(const Function &f) {
  std::vector<SassLoop> loops;
  for (size_t i = 0; i < f.instructions.size(); ++i) {
    const Instruction &ins = f.instructions[i];
    if (!ins.target || baseOpcode(ins.opcode) != "BRA")
      continue;
    auto j = f.labelIndex(*ins.target);
    if (!j || *j > i)
      continue;
    auto same = std::find_if(loops.begin(), loops.end(),
                             [&](const SassLoop &l) { return l.begin == *j; });
    if (same != loops.end()) {
      same->end = std::max(same->end, i);
      continue;
    }
    SassLoop l;
    l.begin = *j;
    l.end = i;
    loops.push_back(l);
  }
  std::sort(loops.begin(), loops.end(), [](const SassLoop &a, const SassLoop &b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
  });
  for (SassLoop &l : loops) {
    l.depth = 0;
    size_t floor = 0;
    for (const SassLoop &o : loops)
      if (contains(o, l)) {
        ++l.depth;
        floor = std::max(floor, o.begin);
      }
    l.tripCount = inferTripCount(f, l.begin, l.end, floor);
  }
  // Counts, innermost first: own instructions plus children x trip count.
  std::vector<size_t> order(loops.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return loops[a].depth > loops[b].depth; });
  for (size_t li : order) {
    SassLoop &l = loops[li];
    std::vector<const SassLoop *> children;
    for (const SassLoop &o : loops)
      if (contains(l, o) && o.depth == l.depth + 1)
        children.push_back(&o);
    for (size_t i = l.begin; i <= l.end; ++i) {
      bool nested = std::any_of(children.begin(), children.end(), [&](const SassLoop *c) {
        return c->begin <= i && i <= c->end;
      });
      if (!nested)
        l.perWarp[static_cast<int>(classify(f.instructions[i].opcode))] += 1;
    }
    for (const SassLoop *c : children) {
      double trips = c->tripCount ? static_cast<double>(*c->tripCount) : 1.0;
      l.exact = l.exact && c->exact && c->tripCount.has_value();
      for (int k = 0; k < kNumClasses; ++k)
        l.perWarp[k] += trips * c->perWarp[k];
    }
  }
  return loops;
}

std::optional<SassLoop> mainLoop(const Function &f) {
  std::vector<SassLoop> loops = findLoops(f);
  // The main loop streams tiles: it holds MMA and loads from global memory
  // (an inner k loop of one dot only reads registers and shared memory).
  // Of those, the innermost; among equals, the one with the most MMA.
  auto loads = [](const SassLoop &l) {
    return l.perWarp[static_cast<int>(InstrClass::Ldgsts)] +
               l.perWarp[static_cast<int>(InstrClass::Global)] >
           0;
  };
  auto better = [](const SassLoop &a, const std::optional<SassLoop> &b) {
    if (!b)
      return true;
    if (a.depth != b->depth)
      return a.depth > b->depth;
    return a.mma() > b->mma();
  };
  std::optional<SassLoop> best;
  for (const SassLoop &l : loops)
    if (l.mma() > 0 && loads(l) && better(l, best))
      best = l;
  if (best)
    return best;
  // No MMA loop loads: the innermost MMA loop with the most MMA.
  for (const SassLoop &l : loops)
    if (l.mma() > 0 && better(l, best))
      best = l;
  return best;
}

namespace {
/// 128-bit accesses: 4 (of 128 bytes per warp), 64-bit: 2, else 1.
double accessWidthUnits(const std::string &opcode) {
  if (hasModifier(opcode, "128"))
    return 4;
  if (hasModifier(opcode, "64"))
    return 2;
  return 1;
}

template <typename Fn>
double sumOverLoop(const Function &f, const SassLoop &loop, Fn perInstruction) {
  // Weight nested loops by their trip counts as findLoops does.
  std::vector<SassLoop> loops = findLoops(f);
  double total = 0;
  for (size_t i = loop.begin; i <= loop.end; ++i) {
    double weight = 1;
    for (const SassLoop &o : loops)
      if (loop.begin <= o.begin && o.end <= loop.end &&
          (o.begin != loop.begin || o.end != loop.end) && o.begin <= i && i <= o.end)
        weight *= o.tripCount ? static_cast<double>(*o.tripCount) : 1.0;
    total += weight * perInstruction(f.instructions[i]);
  }
  return total;
}
} // namespace

double sharedWavefrontsEstimate(const Function &f, const SassLoop &loop) {
  return sumOverLoop(f, loop, [](const Instruction &ins) -> double {
    switch (classify(ins.opcode)) {
    case InstrClass::Ldsm:
      return hasModifier(ins.opcode, "4") ? 4 : hasModifier(ins.opcode, "2") ? 2 : 1;
    case InstrClass::Shared:
    case InstrClass::Ldgsts:
      return accessWidthUnits(ins.opcode);
    default:
      return 0;
    }
  });
}

double globalBytesEstimate(const Function &f, const SassLoop &loop) {
  return sumOverLoop(f, loop, [](const Instruction &ins) -> double {
    InstrClass c = classify(ins.opcode);
    if (c != InstrClass::Global && c != InstrClass::Ldgsts)
      return 0;
    std::string op = baseOpcode(ins.opcode);
    if (op != "LDG" && op != "STG" && op != "LDGSTS" && op != "RED" && op != "ATOMG")
      return 0;
    double bytesPerLane = hasModifier(ins.opcode, "128") ? 16
                          : hasModifier(ins.opcode, "64") ? 8
                          : (hasModifier(ins.opcode, "U16") || hasModifier(ins.opcode, "S16"))
                              ? 2
                          : (hasModifier(ins.opcode, "U8") || hasModifier(ins.opcode, "S8")) ? 1
                                                                                            : 4;
    return 32 * bytesPerLane;
  });
}

} // namespace loom::cuda::sass
