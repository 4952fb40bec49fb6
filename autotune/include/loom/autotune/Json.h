//===- Json.h - the small JSON subset the tuning cache needs ----*- C++ -*-===//
//
// No JSON library is a dependency of Loom, and the tuning cache only needs
// objects, arrays, strings, numbers, booleans and null. Objects keep their
// keys sorted (std::map), so dump() is canonical: parse(dump(x)).dump() ==
// dump(x), which is what the cache checksum relies on. Numbers are doubles
// (integers up to 2^53 are exact and printed without a fraction).
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_AUTOTUNE_JSON_H
#define LOOM_AUTOTUNE_JSON_H

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace loom::autotune {

class Json {
public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Json() = default;
  Json(bool b) : kind_(Kind::Bool), bool_(b) {}
  Json(double d) : kind_(Kind::Number), number_(d) {}
  Json(int64_t i) : kind_(Kind::Number), number_(double(i)) {}
  Json(int i) : kind_(Kind::Number), number_(double(i)) {}
  Json(std::string s) : kind_(Kind::String), string_(std::move(s)) {}
  Json(const char *s) : kind_(Kind::String), string_(s) {}
  static Json object() { Json j; j.kind_ = Kind::Object; return j; }
  static Json array() { Json j; j.kind_ = Kind::Array; return j; }

  Kind kind() const { return kind_; }
  bool isObject() const { return kind_ == Kind::Object; }
  bool isNumber() const { return kind_ == Kind::Number; }
  bool isString() const { return kind_ == Kind::String; }

  /// Accessors throw std::runtime_error naming the expected kind on a
  /// mismatch (the cache turns that into "corrupt file").
  double number() const;
  const std::string &string() const;
  bool boolean() const;
  const std::map<std::string, Json> &items() const;
  std::map<std::string, Json> &items();
  const std::vector<Json> &elements() const;
  std::vector<Json> &elements();
  /// Object member; throws naming `key` when absent.
  const Json &at(const std::string &key) const;
  bool contains(const std::string &key) const;
  /// Object member, created (as null) when absent; turns null into an object.
  Json &operator[](const std::string &key);
  void push(Json value);

  /// Two-space indented text, keys sorted.
  std::string dump() const;
  /// Throws std::runtime_error with the byte offset of the first error.
  static Json parse(std::string_view text);

private:
  void dumpTo(std::string &out, int indent) const;
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<Json> array_;
  std::map<std::string, Json> object_;
};

} // namespace loom::autotune

#endif
