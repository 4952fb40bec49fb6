//===- Trace.cpp - tracing kernels into the loom dialect ------------------===//
#include "Trace.h"

#include "loom/Dialect/Loom/IR/Loom.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <fmt/format.h>

namespace loom::dsl {
namespace {
thread_local KernelBuilder::State *currentState = nullptr;
std::atomic<uint64_t> nextKernelId{1};
} // namespace

namespace detail {
KernelBuilder::State &currentTrace(const char *op, SourceLoc loc) {
  if (!currentState)
    fail(loc, op, "called outside a kernel body (only valid while a Kernel is built)");
  return *currentState;
}
void setCurrentTrace(KernelBuilder::State *state) { currentState = state; }

void fail(SourceLoc loc, std::string_view op, const std::string &message) {
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("{}:{}: error: {}: {}", loc.file_name(), loc.line(), op, message));
}

mlir::Location toMlirLoc(mlir::MLIRContext &ctx, SourceLoc loc) {
  return mlir::FileLineColLoc::get(&ctx, loc.file_name(), loc.line(), loc.column());
}

std::string shapeStr(const Shape &shape) {
  if (shape.empty())
    return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

std::string describe(const Value &v) {
  if (v.isNull())
    return "no value";
  if (v.isLiteral())
    return fmt::format("literal {}", v.literal());
  if (v.isPointer())
    return fmt::format("pointer to {}", dtypeName(v.dtype()));
  if (v.isScalar())
    return fmt::format("{} scalar", dtypeName(v.dtype()));
  return fmt::format("tile {} of {}", shapeStr(v.shape()), dtypeName(v.dtype()));
}
} // namespace detail

using namespace detail;

Value KernelBuilder::pointer(const std::string &name, DType elem, SourceLoc loc) {
  if (std::find(state_.argNames.begin(), state_.argNames.end(), name) !=
      state_.argNames.end())
    fail(loc, "pointer", fmt::format("argument '{}' is already declared", name));
  auto type = mlir::loom::PtrType::get(&state_.ctx, toMlirType(state_.ctx, elem));
  state_.argNames.push_back(name);
  return Value(state_.func.getBody().front().addArgument(type, toMlirLoc(state_.ctx, loc)));
}

Value KernelBuilder::scalar(const std::string &name, DType type, SourceLoc loc) {
  if (type != DType::I32 && type != DType::I64 && type != DType::F32)
    fail(loc, "scalar", fmt::format("argument '{}' has dtype {}; scalar arguments "
                                    "must be i32, i64 or f32",
                                    name, dtypeName(type)));
  if (std::find(state_.argNames.begin(), state_.argNames.end(), name) !=
      state_.argNames.end())
    fail(loc, "scalar", fmt::format("argument '{}' is already declared", name));
  state_.argNames.push_back(name);
  return Value(state_.func.getBody().front().addArgument(toMlirType(state_.ctx, type),
                                                         toMlirLoc(state_.ctx, loc)));
}

int64_t KernelBuilder::constant(const std::string &name, SourceLoc loc) const {
  auto it = state_.constants.find(name);
  if (it == state_.constants.end())
    fail(loc, "constant",
         fmt::format("kernel '{}' reads compile-time constant '{}', which the "
                     "specialization does not set",
                     state_.kernelName, name));
  state_.usedConstants[name] = it->second;
  return it->second;
}

int64_t KernelBuilder::constant(const std::string &name, int64_t fallback) const {
  auto it = state_.constants.find(name);
  int64_t v = it == state_.constants.end() ? fallback : it->second;
  state_.usedConstants[name] = v;
  return v;
}

const std::string &KernelBuilder::kernelName() const { return state_.kernelName; }

Kernel::Kernel(std::string name, Body body)
    : impl_(std::make_shared<Impl>(Impl{std::move(name), std::move(body),
                                        nextKernelId.fetch_add(1)})) {
  if (impl_->name.empty())
    throw Error(ErrorCode::InvalidArgument, "Kernel: name must not be empty");
  for (char c : impl_->name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("Kernel: name '{}' must contain only letters, digits "
                              "and '_'",
                              impl_->name));
  if (!impl_->body)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Kernel '{}': body must not be empty", impl_->name));
}

mlir::OwningOpRef<mlir::ModuleOp> Kernel::build(mlir::MLIRContext &ctx,
                                                const Constants &constants) const {
  ctx.loadDialect<mlir::loom::LoomDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::math::MathDialect,
                  mlir::scf::SCFDialect, mlir::tensor::TensorDialect>();
  mlir::OpBuilder builder(&ctx);
  mlir::Location loc = mlir::NameLoc::get(builder.getStringAttr(impl_->name));
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::ModuleOp::create(loc);
  builder.setInsertionPointToEnd(module->getBody());
  auto func = mlir::func::FuncOp::create(builder, loc, impl_->name,
                                         builder.getFunctionType({}, {}));
  mlir::Block *entry = func.addEntryBlock();
  builder.setInsertionPointToStart(entry);

  KernelBuilder::State state{ctx, builder, impl_->name, constants, func, {}, {}};
  struct Reset {
    ~Reset() { setCurrentTrace(nullptr); }
  } reset;
  if (currentState)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Kernel '{}': cannot build a kernel while tracing '{}'",
                            impl_->name, currentState->kernelName));
  setCurrentTrace(&state);
  KernelBuilder kb(state);
  impl_->body(kb);

  state.builder.setInsertionPointToEnd(entry);
  mlir::func::ReturnOp::create(state.builder, loc);
  func.setFunctionType(builder.getFunctionType(entry->getArgumentTypes(), {}));
  func->setAttr(mlir::loom::kKernelAttrName, builder.getUnitAttr());
  llvm::SmallVector<mlir::Attribute> names;
  for (const std::string &n : state.argNames)
    names.push_back(builder.getStringAttr(n));
  func->setAttr(mlir::loom::kArgNamesAttrName, builder.getArrayAttr(names));
  llvm::SmallVector<mlir::NamedAttribute> used;
  for (auto &[n, v] : state.usedConstants)
    used.push_back(builder.getNamedAttr(n, builder.getI64IntegerAttr(v)));
  func->setAttr("loom.constants", builder.getDictionaryAttr(used));

  // The DSL checks every operand before building, so a verifier failure here
  // is a bug in Loom, not user error.
  std::string diag;
  {
    llvm::raw_string_ostream os(diag);
    mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
      os << d.getLocation() << ": " << d.str() << "\n";
      return mlir::success();
    });
    if (failed(mlir::verify(*module)))
      throw Error(ErrorCode::Internal,
                  fmt::format("kernel '{}' failed verification: {}", impl_->name, diag));
  }
  return module;
}

} // namespace loom::dsl
