//===- AOTOutput.cpp - writing an output directory atomically -------------===//
//
// Part of normjit. Writes the files of an AOT library into a temporary
// directory beside the output directory and renames it into place, so that
// the output directory is either complete or absent; --force swaps an
// earlier output out in one renameat2(RENAME_EXCHANGE) where the system has
// it.
//
//===----------------------------------------------------------------------===//

#include "normjit/AOT/AOTCompiler.h"

#include "AOTInternal.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <string>
#include <vector>

using namespace normjit;
using namespace normjit::aot;

namespace {

llvm::Error ioError(const llvm::Twine &message) {
  return makeError(NORMJIT_IO_ERROR, message);
}

/// Removes a directory tree we created; failures are ignored (there is an
/// error to report already, or nothing is lost).
void removeTree(llvm::StringRef path) {
  if (!path.empty())
    (void)llvm::sys::fs::remove_directories(path, /*IgnoreErrors=*/true);
}

/// Checks that `dir` may be replaced: it is empty, or it holds an earlier
/// output of `normjit aot` and nothing else: a manifest it wrote, and files
/// that manifest names. Anything else (a host's sources, a subdirectory)
/// would be lost with it, so that is an error naming it.
/// The files a manifest says its output holds: the values of its file keys
/// (header, archive, dispatch and source; a target's object, ptx and
/// cubin), not any quoted text (a kernel's or a target's name may also be a
/// file's name in the directory).
std::set<std::string> listOutputFiles(llvm::StringRef manifest) {
  static constexpr llvm::StringLiteral kFileKeys[] = {
      "header", "archive", "dispatch", "source", "object", "ptx", "cubin"};
  std::set<std::string> files;
  llvm::SmallVector<llvm::StringRef> lines;
  manifest.split(lines, '\n');
  for (llvm::StringRef line : lines) {
    auto [key, value] = line.split('=');
    key = key.trim();
    value = value.trim();
    if (llvm::is_contained(kFileKeys, key) && value.size() >= 2 &&
        value.front() == '"' && value.back() == '"' &&
        !value.drop_front().drop_back().contains('"') &&
        !value.contains('\\'))
      files.insert(value.drop_front().drop_back().str());
  }
  return files;
}

llvm::Error checkReplaceable(llvm::StringRef dir, llvm::StringRef shownDir) {
  std::error_code ec;
  std::vector<std::string> names;
  std::string manifests; // the manifests' text, for the names they list
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec)) {
    std::string name = llvm::sys::path::filename(it->path()).str();
    if (llvm::StringRef(name).ends_with(normjit::aot::detail::kManifestSuffix)) {
      auto buffer = llvm::MemoryBuffer::getFile(it->path());
      if (buffer && (*buffer)->getBuffer().starts_with(
                        normjit::aot::detail::kManifestHeader)) {
        manifests += (*buffer)->getBuffer();
        continue;
      }
    }
    names.push_back(std::move(name));
  }
  if (ec)
    return ioError("cannot read the output directory '" + shownDir +
                   "': " + ec.message());
  bool hasManifest = !manifests.empty();
  if (!hasManifest && names.empty())
    return llvm::Error::success();
  if (!hasManifest)
    return ioError("the output directory '" + shownDir +
                   "' is not empty and holds no normjit aot manifest; "
                   "refusing to replace it");
  std::sort(names.begin(), names.end());
  std::set<std::string> outputs = listOutputFiles(manifests);
  for (const std::string &name : names) {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, name);
    bool listed = outputs.count(name) != 0;
    if (!listed || !llvm::sys::fs::is_regular_file(path))
      return ioError("the output directory '" + shownDir + "' holds '" + name +
                     "', which is not a file of the earlier output its "
                     "manifest describes; refusing to replace it (and lose "
                     "that)");
  }
  return llvm::Error::success();
}

/// Writes one file.
llvm::Error writeFile(llvm::StringRef path, llvm::StringRef contents) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return ioError("cannot write '" + path + "': " + ec.message());
  os << contents;
  os.close();
  if (os.has_error()) {
    std::string message = os.error().message();
    os.clear_error();
    return ioError("cannot write '" + path + "': " + message);
  }
  return llvm::Error::success();
}

/// Swaps two directories in one step where the system can; returns false
/// when it cannot (the caller falls back to two renames).
bool exchange(llvm::StringRef a, llvm::StringRef b) {
#if defined(__linux__) && defined(RENAME_EXCHANGE)
  std::string first = a.str(), second = b.str();
  return renameat2(AT_FDCWD, first.c_str(), AT_FDCWD, second.c_str(),
                   RENAME_EXCHANGE) == 0;
#else
  (void)a;
  (void)b;
  return false;
#endif
}

} // namespace

llvm::Error normjit::aot::writeAotOutput(llvm::StringRef dir,
                                         llvm::ArrayRef<AotFile> files,
                                         bool force) {
  llvm::SmallString<256> target(dir);
  if (std::error_code ec = llvm::sys::fs::make_absolute(target))
    return ioError("cannot resolve the output directory '" + dir +
                   "': " + ec.message());
  llvm::sys::path::remove_dots(target, /*remove_dot_dot=*/true);
  // A symbolic link to an earlier output stays a link: its target is
  // replaced.
  llvm::sys::fs::file_status linkStatus;
  if (!llvm::sys::fs::status(target, linkStatus, /*follow=*/false) &&
      linkStatus.type() == llvm::sys::fs::file_type::symlink_file) {
    llvm::SmallString<256> resolved;
    if (std::error_code ec = llvm::sys::fs::real_path(target, resolved))
      return ioError("cannot resolve the output directory '" + dir +
                     "', a symbolic link: " + ec.message());
    target = resolved;
  }
  llvm::StringRef base = llvm::sys::path::filename(target);
  llvm::StringRef parent = llvm::sys::path::parent_path(target);
  if (base.empty() || base == "." || base == ".." || parent.empty())
    return ioError("'" + dir + "' cannot be an output directory");
  if (!llvm::sys::fs::exists(parent))
    return ioError("cannot write the output directory '" + dir +
                   "': its parent directory '" + parent + "' does not exist");
  if (!llvm::sys::fs::is_directory(parent))
    return ioError("cannot write the output directory '" + dir + "': '" +
                   parent + "' is not a directory");

  bool exists = llvm::sys::fs::exists(target);
  if (exists) {
    if (!llvm::sys::fs::is_directory(target))
      return ioError("the output directory '" + dir +
                     "' exists and is not a directory");
    if (!force)
      return ioError("the output directory '" + dir +
                     "' already exists; pass --force to replace it");
    if (llvm::Error error = checkReplaceable(target, dir))
      return error;
  }

  // Everything goes into a hidden temporary directory beside the target:
  // same file system (rename works), and nothing there looks complete.
  llvm::SmallString<256> temporary;
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory(
          parent + "/." + base + ".tmp", temporary))
    return ioError("cannot write the output directory '" + dir +
                   "': " + ec.message());
  for (const AotFile &file : files) {
    llvm::SmallString<256> path(temporary);
    llvm::sys::path::append(path, file.name);
    if (llvm::Error error = writeFile(path, file.contents)) {
      removeTree(temporary);
      return error;
    }
  }
  // createUniqueDirectory makes it 0700; give it the usual permissions.
  (void)llvm::sys::fs::setPermissions(
      temporary, llvm::sys::fs::perms(llvm::sys::fs::all_all &
                                      ~llvm::sys::fs::group_write &
                                      ~llvm::sys::fs::others_write));

  if (!exists) {
    if (std::error_code ec = llvm::sys::fs::rename(temporary, target)) {
      removeTree(temporary);
      return ioError("cannot create the output directory '" + dir +
                     "': " + ec.message());
    }
    return llvm::Error::success();
  }
  // Replace an earlier output: swap in one step, then remove the old files
  // (now in the temporary directory).
  if (exchange(temporary, target)) {
    removeTree(temporary);
    return llvm::Error::success();
  }
  llvm::SmallString<256> old;
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory(
          parent + "/." + base + ".old", old)) {
    removeTree(temporary);
    return ioError("cannot replace the output directory '" + dir +
                   "': " + ec.message());
  }
  if (std::error_code ec = llvm::sys::fs::rename(target, old)) {
    removeTree(temporary);
    removeTree(old);
    return ioError("cannot replace the output directory '" + dir +
                   "': " + ec.message());
  }
  if (std::error_code ec = llvm::sys::fs::rename(temporary, target)) {
    (void)llvm::sys::fs::rename(old, target);
    removeTree(temporary);
    return ioError("cannot replace the output directory '" + dir +
                   "': " + ec.message());
  }
  removeTree(old);
  return llvm::Error::success();
}
