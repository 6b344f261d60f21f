//===- Sweep.cpp - sweep files: many specs to tune ------------------------===//
//
// Part of normjit. Parses sweep files:
//
//   [[sweep]]                      # one or more groups (or a single [sweep])
//   ops = ["layer_norm", "rms_norm"]
//   cols = [768, 1024, 4096]
//   rows = [1, 16, 4096]
//   dtypes = ["f32", "bf16"]       # optional, default ["f32"]
//   residual = [false, true]       # optional, default [false]
//   param_dtype = "f32"            # optional: gamma's and beta's dtype,
//                                  # default each spec's dtype
//   store_stats = true             # optional, default false: store rstd,
//                                  # and the mean for layer_norm
//   gamma = true                   # optional, default true
//   beta = true                    # optional, default true for layer_norm
//   eps = 1e-5                     # optional, default 1e-5 / 1e-6 (rms)
//   budget = 2.5                   # optional seconds per spec
//
//===----------------------------------------------------------------------===//

#include "Sweep.h"

#include "Commands.h"

#include "normjit/JIT/KernelCompiler.h"
#include "normjit/runtime/Error.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/FileSystem.h"

#define TOML_EXCEPTIONS 0
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>

using namespace normjit;
using namespace normjit::tool;

namespace {
/// The most specs a sweep file may name (its tables together): a million
/// shapes take days to tune even spread over a cluster's shards.
constexpr uint64_t kMaxSweepSpecs = 1000000;

class SweepParser {
public:
  explicit SweepParser(std::string path) : path(std::move(path)) {}

  /// "FILE:LINE" of `node` (the file alone without one).
  std::string where(const toml::node *node) const {
    std::string text = path;
    if (node && node->source().begin.line)
      text += ":" + std::to_string(node->source().begin.line);
    return text;
  }

  llvm::Error error(const toml::node *node, const llvm::Twine &message) {
    return makeError(NORMJIT_INVALID_ARGUMENT,
                     "malformed sweep file " + where(node) + ": " + message);
  }

  /// An array of `T` under `key`, or the default when absent.
  template <typename T>
  llvm::Expected<std::vector<T>> array(const toml::table &group,
                                       const char *key, bool required,
                                       std::vector<T> otherwise = {}) {
    const toml::node *node = group.get(key);
    if (!node) {
      if (required)
        return error(&group, "missing key '" + llvm::Twine(key) + "'");
      return otherwise;
    }
    const toml::array *values = node->as_array();
    if (!values || values->empty())
      return error(node, "'" + llvm::Twine(key) + "' must be a non-empty array");
    std::vector<T> result;
    for (const toml::node &value : *values) {
      std::optional<T> item = value.value_exact<T>();
      if (!item)
        return error(&value, "'" + llvm::Twine(key) + "' holds a value of the "
                                 "wrong type");
      result.push_back(*item);
    }
    return result;
  }

  llvm::Error parseGroup(const toml::table &group,
                         std::vector<SweepItem> &items) {
    static const char *kKeys[] = {"ops",         "cols",        "rows",
                                  "dtypes",      "residual",    "param_dtype",
                                  "store_stats", "gamma",       "beta",
                                  "eps",         "budget"};
    for (const auto &[key, value] : group) {
      bool known = false;
      for (const char *name : kKeys)
        known |= key.str() == name;
      if (!known)
        return error(&value, "unknown key '" + llvm::Twine(key.str()) +
                                 "' (known: ops, cols, rows, dtypes, "
                                 "residual, param_dtype, store_stats, gamma, "
                                 "beta, eps, budget)");
    }
    auto ops = array<std::string>(group, "ops", true);
    if (!ops)
      return ops.takeError();
    auto cols = array<int64_t>(group, "cols", true);
    if (!cols)
      return cols.takeError();
    auto rows = array<int64_t>(group, "rows", true);
    if (!rows)
      return rows.takeError();
    auto dtypes = array<std::string>(group, "dtypes", false, {"f32"});
    if (!dtypes)
      return dtypes.takeError();
    auto residuals = array<bool>(group, "residual", false, {false});
    if (!residuals)
      return residuals.takeError();

    auto flag = [&](const char *key, bool otherwise) -> llvm::Expected<bool> {
      const toml::node *node = group.get(key);
      if (!node)
        return otherwise;
      if (std::optional<bool> value = node->value_exact<bool>())
        return *value;
      return error(node, "'" + llvm::Twine(key) + "' must be true or false");
    };
    auto number = [&](const char *key) -> llvm::Expected<double> {
      const toml::node *node = group.get(key);
      if (!node)
        return 0.0;
      std::optional<double> value = node->value<double>();
      if (!value || !std::isfinite(*value) || *value <= 0)
        return error(node, "'" + llvm::Twine(key) +
                               "' must be a positive number");
      return *value;
    };
    auto gamma = flag("gamma", true);
    if (!gamma)
      return gamma.takeError();
    auto storeStats = flag("store_stats", false);
    if (!storeStats)
      return storeStats.takeError();
    std::optional<normjit_dtype_t> paramDtype;
    if (const toml::node *node = group.get("param_dtype")) {
      std::optional<std::string> name = node->value_exact<std::string>();
      normjit_dtype_t parsed;
      if (!name || normjit_dtype_parse(name->c_str(), &parsed) != NORMJIT_OK) {
        normjit_clear_error();
        return error(node, "'param_dtype' must be \"f32\", \"f16\" or "
                           "\"bf16\"");
      }
      paramDtype = parsed;
    }
    const toml::node *betaNode = group.get("beta");
    auto beta = flag("beta", true);
    if (!beta)
      return beta.takeError();
    auto eps = number("eps");
    if (!eps)
      return eps.takeError();
    // Kernels take an f32 epsilon: one that rounds to 0 or overflows is no
    // epsilon (said at its line, not the table's).
    if (float asFloat = static_cast<float>(*eps);
        *eps > 0 && (!(asFloat > 0.0f) || !std::isfinite(asFloat)))
      return error(group.get("eps"),
                   "'eps' must be positive and finite as an f32, got " +
                       formatNumber(*eps));
    auto budget = number("budget");
    if (!budget)
      return budget.takeError();

    // (Said at the value's line: an array may span lines; a default one,
    // absent from the file, at the table's.)
    auto element = [&](const char *key, size_t i) -> const toml::node * {
      const toml::node *node = group.get(key);
      if (!node)
        return &group;
      return node->as_array()->get(i);
    };
    for (size_t i = 0; i < cols->size(); ++i)
      if (int64_t c = (*cols)[i]; c < 1 || c > (int64_t(1) << 30))
        return error(element("cols", i),
                     "'cols' must be in [1, 2^30], got " + llvm::Twine(c));
    for (size_t i = 0; i < rows->size(); ++i)
      if (int64_t r = (*rows)[i]; r < 1 || r > (int64_t(1) << 40))
        return error(element("rows", i),
                     "'rows' must be in [1, 2^40], got " + llvm::Twine(r));

    // The group's specs, counted before they are made: a short file of
    // long lists can name more shapes than memory holds.
    uint64_t count = 1;
    for (size_t length : {ops->size(), dtypes->size(), residuals->size(),
                          cols->size(), rows->size()})
      count = std::min<uint64_t>(count * length, kMaxSweepSpecs + 1);
    if (items.size() + count > kMaxSweepSpecs)
      return error(&group,
                   "the sweep names more than " +
                       std::to_string(kMaxSweepSpecs) + " specs (" +
                       (count > kMaxSweepSpecs
                            ? std::string("this table alone")
                            : "this table brings it to " +
                                  std::to_string(items.size() + count)) +
                       "); split it into several sweep files");
    for (size_t o = 0; o < ops->size(); ++o) {
      const std::string &opName = (*ops)[o];
      normjit_op_t op;
      if (opName == "layer_norm")
        op = NORMJIT_LAYER_NORM;
      else if (opName == "rms_norm")
        op = NORMJIT_RMS_NORM;
      else
        return error(element("ops", o), "unknown op '" + llvm::Twine(opName) +
                                            "'; expected layer_norm or rms_norm");
      for (size_t d = 0; d < dtypes->size(); ++d) {
        const std::string &dtypeName = (*dtypes)[d];
        normjit_dtype_t dtype;
        if (normjit_dtype_parse(dtypeName.c_str(), &dtype) != NORMJIT_OK)
          return error(element("dtypes", d),
                       "unknown dtype '" + llvm::Twine(dtypeName) +
                           "'; expected f32, f16 or bf16");
        for (bool residual : *residuals)
          for (size_t ci = 0; ci < cols->size(); ++ci)
            for (int64_t r : *rows) {
              int64_t c = (*cols)[ci];
              SweepItem item;
              item.spec = normjit_kernel_spec_default(op, c);
              item.spec.x_dtype = item.spec.y_dtype = item.spec.residual_dtype =
                  item.spec.sum_dtype = item.spec.gamma_dtype =
                      item.spec.beta_dtype = dtype;
              if (paramDtype)
                item.spec.gamma_dtype = item.spec.beta_dtype = *paramDtype;
              item.spec.has_residual = item.spec.store_sum = residual;
              item.spec.store_rstd = *storeStats;
              item.spec.store_mean = *storeStats && op == NORMJIT_LAYER_NORM;
              item.spec.has_gamma = *gamma;
              // beta: on for layer_norm unless turned off; for rms_norm only
              // when asked for explicitly.
              item.spec.has_beta =
                  op == NORMJIT_LAYER_NORM ? *beta : (betaNode && *beta);
              item.spec.epsilon = static_cast<float>(
                  *eps > 0 ? *eps : (op == NORMJIT_LAYER_NORM ? 1e-5 : 1e-6));
              item.rows = r;
              item.budgetSeconds = *budget;
              item.origin = where(element("cols", ci));
              if (normjit_kernel_spec_validate(&item.spec) != NORMJIT_OK)
                return error(&group, normjit_last_error());
              items.push_back(item);
            }
      }
    }
    return llvm::Error::success();
  }

  llvm::Expected<std::vector<SweepItem>> parse() {
    // What TOML++ says of a path it cannot open is only that; say why.
    std::error_code code;
    llvm::sys::fs::file_status status;
    if ((code = llvm::sys::fs::status(path, status)))
      return makeError(NORMJIT_IO_ERROR, "cannot read sweep file '" + path +
                                             "': " + code.message());
    if (llvm::sys::fs::is_directory(status))
      return makeError(NORMJIT_IO_ERROR, "cannot read sweep file '" + path +
                                             "': it is a directory");
    // Read here, not by TOML++'s parse_file, which cannot read a pipe
    // (`--sweep <(...)`, /dev/stdin) and says nothing of why a file cannot
    // be read; at most kMaxSweepFileBytes (/dev/zero is no sweep file).
    constexpr size_t kMaxSweepFileBytes = size_t(16) << 20;
    std::ifstream file(path, std::ios::binary);
    if (!file)
      return makeError(NORMJIT_IO_ERROR,
                       "cannot read sweep file '" + path +
                           "': " + normjit::runtime::errorText(errno));
    std::string content;
    char buffer[65536];
    while (file.read(buffer, sizeof buffer) || file.gcount() > 0) {
      content.append(buffer, static_cast<size_t>(file.gcount()));
      if (content.size() > kMaxSweepFileBytes)
        return makeError(NORMJIT_INVALID_ARGUMENT,
                         "sweep file '" + path + "' is larger than 16 MiB");
    }
    if (file.bad())
      return makeError(NORMJIT_IO_ERROR,
                       "cannot read sweep file '" + path +
                           "': " + normjit::runtime::errorText(errno));
    toml::parse_result result = toml::parse(std::string_view(content), path);
    if (!result) {
      const toml::parse_error &failure = result.error();
      std::string where = path;
      if (failure.source().begin.line)
        where += ":" + std::to_string(failure.source().begin.line);
      std::string what(failure.description());
      return makeError(NORMJIT_INVALID_ARGUMENT,
                       "malformed sweep file " + where + ": " + what);
    }
    const toml::table &root = result.table();
    for (const auto &[key, value] : root)
      if (key.str() != "sweep")
        return error(&value, "unknown key '" + llvm::Twine(key.str()) +
                                 "'; expected [sweep] or [[sweep]] tables");
    const toml::node *sweep = root.get("sweep");
    if (!sweep)
      return error(nullptr, "no [sweep] table");
    std::vector<SweepItem> items;
    if (const toml::table *group = sweep->as_table()) {
      if (llvm::Error e = parseGroup(*group, items))
        return std::move(e);
    } else if (const toml::array *groups = sweep->as_array()) {
      for (const toml::node &node : *groups) {
        const toml::table *group = node.as_table();
        if (!group)
          return error(&node, "'sweep' entries must be tables");
        if (llvm::Error e = parseGroup(*group, items))
          return std::move(e);
      }
    } else {
      return error(sweep, "'sweep' must be a table or an array of tables");
    }
    if (items.empty())
      return error(sweep, "the sweep is empty");
    return items;
  }

private:
  std::string path;
};
} // namespace

llvm::Expected<std::vector<SweepItem>>
normjit::tool::loadSweep(const std::string &path) {
  return SweepParser(path).parse();
}
