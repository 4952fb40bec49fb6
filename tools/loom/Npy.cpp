//===- Npy.cpp ------------------------------------------------------------===//
#include "Npy.h"
#include "Output.h"

#include "loom/Support/Error.h"

#include <bit>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace loom::cli {
namespace {
static_assert(std::endian::native == std::endian::little, "the .npy code assumes a little-endian host");

const char kMagic[] = "\x93NUMPY";
const size_t kMagicSize = 6;

[[noreturn]] void fail(const std::string &path, const std::string &what) {
  throw Error(ErrorCode::InvalidArgument, path + ": " + what);
}

/// The header's Python dict literal, e.g.
///   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct HeaderParser {
  const std::string &path, &text;
  size_t pos = 0;

  [[noreturn]] void bad(const std::string &what) {
    fail(path, fmt::format("bad .npy header: {}", what));
  }
  void skipSpace() {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos])))
      ++pos;
  }
  bool accept(char c) {
    skipSpace();
    if (pos < text.size() && text[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!accept(c))
      bad(fmt::format("expected '{}'", c));
  }
  std::string string() {
    skipSpace();
    if (pos >= text.size() || (text[pos] != '\'' && text[pos] != '"'))
      bad("expected a string");
    char quote = text[pos++];
    size_t end = text.find(quote, pos);
    if (end == std::string::npos)
      bad("unterminated string");
    std::string s = text.substr(pos, end - pos);
    pos = end + 1;
    return s;
  }
  bool boolean() {
    skipSpace();
    for (auto [word, value] : {std::pair{"True", true}, std::pair{"False", false}})
      if (text.compare(pos, std::strlen(word), word) == 0) {
        pos += std::strlen(word);
        return value;
      }
    bad("expected True or False");
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> dims;
    while (!accept(')')) {
      skipSpace();
      size_t start = pos;
      int64_t d = 0;
      while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
        if (d > (int64_t(1) << 48))
          bad("dimension too large");
        d = d * 10 + (text[pos++] - '0');
      }
      if (pos == start)
        bad("expected a non-negative integer in the shape");
      dims.push_back(d);
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }
};
} // namespace

std::string shapeString(const std::vector<int64_t> &shape) {
  if (shape.size() == 1)
    return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

NpyArray readNpy(const std::string &path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error(ErrorCode::InvalidArgument, fmt::format("missing file '{}'", path));
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(ErrorCode::InvalidArgument, fmt::format("'{}' is not a regular file", path));
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof())
    throw Error(ErrorCode::InvalidArgument, fmt::format("cannot read '{}'", path));

  if (bytes.size() < kMagicSize + 2 || bytes.compare(0, kMagicSize, kMagic, kMagicSize) != 0)
    fail(path, "not a .npy file (bad magic)");
  unsigned major = uint8_t(bytes[6]), minor = uint8_t(bytes[7]);
  if ((major != 1 && major != 2) || minor != 0)
    fail(path, fmt::format(".npy format version {}.{} is not supported (only 1.0 and 2.0)", major,
                           minor));
  size_t lenBytes = major == 1 ? 2 : 4, headerStart = 8 + lenBytes;
  if (bytes.size() < headerStart)
    fail(path, "file is truncated inside the .npy header");
  size_t headerLen = 0;
  for (size_t i = 0; i < lenBytes; ++i)
    headerLen |= size_t(uint8_t(bytes[8 + i])) << (8 * i);
  if (bytes.size() - headerStart < headerLen)
    fail(path, fmt::format("file is truncated: header length is {} bytes, found {}", headerLen,
                           bytes.size() - headerStart));
  std::string header = bytes.substr(headerStart, headerLen);
  if (header.empty() || header.back() != '\n')
    fail(path, "bad .npy header: it does not end with a newline");
  header.pop_back();

  HeaderParser p{path, header};
  std::optional<std::string> descr;
  std::optional<bool> fortran;
  std::optional<std::vector<int64_t>> shape;
  p.expect('{');
  while (!p.accept('}')) {
    std::string key = p.string();
    p.expect(':');
    if (key == "descr" && !descr)
      descr = p.string();
    else if (key == "fortran_order" && !fortran)
      fortran = p.boolean();
    else if (key == "shape" && !shape)
      shape = p.tuple();
    else
      p.bad(fmt::format("unexpected or repeated key '{}'", key));
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  p.skipSpace();
  if (p.pos != header.size())
    p.bad("text after the dict");
  if (!descr || !fortran || !shape)
    p.bad("needs the keys 'descr', 'fortran_order' and 'shape'");
  if (*descr == ">f4")
    fail(path, "dtype '>f4' is big-endian float32; only little-endian '<f4' is supported");
  if (*descr != "<f4")
    fail(path, fmt::format("dtype '{}' is not float32", *descr));
  if (*fortran)
    fail(path, "fortran_order arrays are not supported (save a C-order array)");

  size_t count = 1;
  for (int64_t d : *shape) {
    if (d != 0 && count > (size_t(1) << 60) / size_t(d))
      fail(path, fmt::format("shape {} is too large", shapeString(*shape)));
    count *= size_t(d);
  }
  size_t dataStart = headerStart + headerLen, want = count * sizeof(float);
  size_t found = bytes.size() - dataStart;
  if (found < want)
    fail(path, fmt::format("file is truncated: header says {} bytes of data, found {}", want, found));
  if (found > want)
    fail(path, fmt::format("file has {} bytes of data after the {} the header describes",
                           found - want, want));
  NpyArray array{*shape, std::vector<float>(count)};
  if (want)
    std::memcpy(array.data.data(), bytes.data() + dataStart, want);
  return array;
}

void writeNpy(AtomicFile &file, const std::vector<int64_t> &shape, const float *data) {
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}",
                                   shapeString(shape));
  // Pad with spaces and a newline so that the data starts 64-byte aligned.
  size_t total = kMagicSize + 4 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  size_t count = 1;
  for (int64_t d : shape)
    count *= size_t(d);
  uint16_t len = uint16_t(header.size());
  char version[4] = {1, 0, char(len & 0xff), char(len >> 8)};
  file.write(kMagic, kMagicSize);
  file.write(version, sizeof version);
  file.write(header.data(), header.size());
  file.write(data, count * sizeof(float));
}

} // namespace loom::cli
