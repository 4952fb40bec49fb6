//===- Json.cpp - the small JSON subset the tuning cache needs ------------===//
#include "loom/autotune/Json.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace loom::autotune {

static const char *kindName(Json::Kind k) {
  switch (k) {
  case Json::Kind::Null: return "null";
  case Json::Kind::Bool: return "boolean";
  case Json::Kind::Number: return "number";
  case Json::Kind::String: return "string";
  case Json::Kind::Array: return "array";
  case Json::Kind::Object: return "object";
  }
  return "?";
}

static void expect(const Json &j, Json::Kind k) {
  if (j.kind() != k)
    throw std::runtime_error(std::string("expected a JSON ") + kindName(k) + ", found " +
                             kindName(j.kind()));
}

double Json::number() const { expect(*this, Kind::Number); return number_; }
const std::string &Json::string() const { expect(*this, Kind::String); return string_; }
bool Json::boolean() const { expect(*this, Kind::Bool); return bool_; }
const std::map<std::string, Json> &Json::items() const { expect(*this, Kind::Object); return object_; }
std::map<std::string, Json> &Json::items() { expect(*this, Kind::Object); return object_; }
const std::vector<Json> &Json::elements() const { expect(*this, Kind::Array); return array_; }
std::vector<Json> &Json::elements() { expect(*this, Kind::Array); return array_; }

const Json &Json::at(const std::string &key) const {
  auto it = items().find(key);
  if (it == object_.end())
    throw std::runtime_error("missing key \"" + key + "\"");
  return it->second;
}

bool Json::contains(const std::string &key) const {
  return kind_ == Kind::Object && object_.count(key);
}

Json &Json::operator[](const std::string &key) {
  if (kind_ == Kind::Null)
    kind_ = Kind::Object;
  return items()[key];
}

void Json::push(Json value) {
  if (kind_ == Kind::Null)
    kind_ = Kind::Array;
  elements().push_back(std::move(value));
}

static void quote(std::string &out, const std::string &s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\t': out += "\\t"; break;
    case '\r': out += "\\r"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += char(c);
      }
    }
  }
  out += '"';
}

void Json::dumpTo(std::string &out, int indent) const {
  std::string pad(size_t(indent + 2), ' ');
  switch (kind_) {
  case Kind::Null: out += "null"; return;
  case Kind::Bool: out += bool_ ? "true" : "false"; return;
  case Kind::Number: {
    char buf[40];
    if (!std::isfinite(number_))
      throw std::runtime_error("JSON cannot hold a non-finite number");
    if (number_ == std::trunc(number_) && std::fabs(number_) < 9.007199254740992e15)
      std::snprintf(buf, sizeof buf, "%lld", (long long)number_);
    else
      std::snprintf(buf, sizeof buf, "%.17g", number_);
    out += buf;
    return;
  }
  case Kind::String: quote(out, string_); return;
  case Kind::Array:
    if (array_.empty()) { out += "[]"; return; }
    out += "[\n";
    for (size_t i = 0; i < array_.size(); ++i) {
      out += pad;
      array_[i].dumpTo(out, indent + 2);
      out += i + 1 < array_.size() ? ",\n" : "\n";
    }
    out += std::string(size_t(indent), ' ') + "]";
    return;
  case Kind::Object: {
    if (object_.empty()) { out += "{}"; return; }
    out += "{\n";
    size_t i = 0;
    for (const auto &[k, v] : object_) {
      out += pad;
      quote(out, k);
      out += ": ";
      v.dumpTo(out, indent + 2);
      out += ++i < object_.size() ? ",\n" : "\n";
    }
    out += std::string(size_t(indent), ' ') + "}";
    return;
  }
  }
}

std::string Json::dump() const {
  std::string out;
  dumpTo(out, 0);
  out += '\n';
  return out;
}

namespace {
struct Parser {
  std::string_view s;
  size_t i = 0;
  int depth = 0;

  [[noreturn]] void fail(const std::string &what) {
    throw std::runtime_error("JSON parse error at byte " + std::to_string(i) + ": " + what);
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
      ++i;
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) { ++i; return true; }
    return false;
  }
  void need(char c) {
    if (!eat(c))
      fail(std::string("expected '") + c + "'");
  }
  std::string str() {
    need('"');
    std::string out;
    while (true) {
      if (i >= s.size()) fail("unterminated string");
      char c = s[i++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') { out += c; continue; }
      if (i >= s.size()) fail("unterminated escape");
      char e = s[i++];
      switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        if (i + 4 > s.size()) fail("short \\u escape");
        unsigned v = unsigned(std::strtoul(std::string(s.substr(i, 4)).c_str(), nullptr, 16));
        i += 4;
        // The cache only writes \u00XX for control characters; other code
        // points are stored as UTF-8 (BMP only, no surrogate pairs).
        if (v < 0x80) out += char(v);
        else if (v < 0x800) { out += char(0xC0 | (v >> 6)); out += char(0x80 | (v & 0x3F)); }
        else { out += char(0xE0 | (v >> 12)); out += char(0x80 | ((v >> 6) & 0x3F)); out += char(0x80 | (v & 0x3F)); }
        break;
      }
      default: fail("bad escape");
      }
    }
  }
  Json value() {
    if (++depth > 64) fail("nesting too deep");
    ws();
    if (i >= s.size()) fail("unexpected end of input");
    Json out;
    char c = s[i];
    if (c == '{') {
      ++i;
      out = Json::object();
      if (!eat('}')) {
        do {
          ws();
          std::string key = str();
          need(':');
          out[key] = value();
        } while (eat(','));
        need('}');
      }
    } else if (c == '[') {
      ++i;
      out = Json::array();
      if (!eat(']')) {
        do out.push(value()); while (eat(','));
        need(']');
      }
    } else if (c == '"') {
      out = Json(str());
    } else if (s.substr(i, 4) == "true") { i += 4; out = Json(true); }
    else if (s.substr(i, 5) == "false") { i += 5; out = Json(false); }
    else if (s.substr(i, 4) == "null") { i += 4; }
    else {
      size_t start = i;
      while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '-' ||
                              s[i] == '+' || s[i] == '.' || s[i] == 'e' || s[i] == 'E'))
        ++i;
      if (start == i) fail(std::string("unexpected character '") + c + "'");
      std::string text(s.substr(start, i - start));
      char *end = nullptr;
      double d = std::strtod(text.c_str(), &end);
      if (*end != '\0' || !std::isfinite(d)) fail("bad number '" + text + "'");
      out = Json(d);
    }
    --depth;
    return out;
  }
};
} // namespace

Json Json::parse(std::string_view text) {
  Parser p{text};
  Json v = p.value();
  p.ws();
  if (p.i != text.size())
    p.fail("trailing characters");
  return v;
}

} // namespace loom::autotune
