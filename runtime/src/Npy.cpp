//===- Npy.cpp - reading and writing NumPy .npy files ---------------------===//
//
// Part of normjit. Implements Npy.h: a bounds-checked reader for .npy
// versions 1.0 to 3.0 with a small parser for the header's Python literal,
// and an atomic writer that lays files out as numpy.save does.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/Npy.h"
#include "normjit/runtime/Error.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif
#include <unistd.h>

using normjit::runtime::NpyArray;
using normjit::runtime::setError;

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
/// The longest header accepted when reading; numpy's own limit is 10000.
constexpr uint32_t kMaxHeaderSize = 1u << 20;
/// numpy aligns the data to 64 bytes and leaves room for a first dimension
/// of up to 21 digits, so that a file can grow in place.
constexpr size_t kAlignment = 64;
constexpr size_t kGrowthAxisMaxDigits = 21;
/// How deeply tuples and lists may nest in a header; a shape needs one level.
constexpr unsigned kMaxNesting = 16;
/// Data is read in pieces of at most this size, so that a file claiming a
/// huge shape cannot make the reader allocate more than the file holds.
constexpr size_t kReadChunk = size_t(64) << 20;

const char *const kExpectedDTypes =
    "expected <f4 (f32), <f2 (f16) or <u2 (bf16 bits)";

/// Formats `shape` as Python's repr of a tuple: "()", "(5,)" or "(3, 4)".
std::string shapeText(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      text += ", ";
    text += std::to_string(shape[i]);
  }
  if (shape.size() == 1)
    text += ",";
  return text + ")";
}

enum class SizeCheck { Ok, Negative, Overflow };

/// Computes the byte size of an array of `shape` with `elementSize`-byte
/// elements, guarding every multiplication.
SizeCheck byteSize(const std::vector<int64_t> &shape, size_t elementSize,
                   uint64_t &bytes) {
  int64_t total = static_cast<int64_t>(elementSize);
  bool overflow = false;
  for (int64_t dimension : shape) {
    if (dimension < 0)
      return SizeCheck::Negative;
    overflow |= __builtin_mul_overflow(total, dimension, &total);
  }
  // A zero dimension makes an overflow of earlier ones harmless, but keep
  // the rule simple: every prefix product must fit.
  if (overflow ||
      static_cast<uint64_t>(total) > std::numeric_limits<size_t>::max())
    return SizeCheck::Overflow;
  bytes = static_cast<uint64_t>(total);
  return SizeCheck::Ok;
}

/// The descr a dtype is written with.
const char *descrOf(normjit_dtype_t dtype) {
  switch (dtype) {
  case NORMJIT_F32:
    return "<f4";
  case NORMJIT_F16:
    return "<f2";
  case NORMJIT_BF16:
    return "<u2";
  }
  return nullptr;
}

//===----------------------------------------------------------------------===//
// The header: a Python dict literal
//===----------------------------------------------------------------------===//

/// A Python literal as it may appear in a .npy header.
struct PyValue {
  enum Kind { String, Bool, None, Int, Tuple, List };
  Kind kind = None;
  /// The text of a String, or the digits of an Int (for messages).
  std::string text;
  bool boolean = false;
  int64_t integer = 0;
  /// An Int whose value does not fit in int64_t.
  bool overflow = false;
  std::vector<PyValue> items;
};

/// Parses the header's dict literal: string keys, and strings, integers,
/// True, False, None, tuples and lists as values, with Python's rules for
/// whitespace, trailing commas and parentheses.
class HeaderParser {
public:
  explicit HeaderParser(const std::string &text) : text(text) {}

  /// Parses the whole header; on failure returns false and leaves a
  /// description in `error`.
  bool parse(std::vector<std::pair<std::string, PyValue>> &entries) {
    skipSpace();
    if (!consume('{'))
      return fail("expected '{'");
    skipSpace();
    while (!consume('}')) {
      if (!atQuote())
        return fail("expected a string key or '}'");
      std::string key;
      if (!parseString(key))
        return false;
      skipSpace();
      if (!consume(':'))
        return fail("expected ':' after key '" + key + "'");
      skipSpace();
      PyValue value;
      if (!parseValue(value, 0))
        return false;
      entries.emplace_back(std::move(key), std::move(value));
      skipSpace();
      if (consume(',')) {
        skipSpace();
        continue;
      }
      if (consume('}'))
        break;
      return fail("expected ',' or '}'");
    }
    skipSpace();
    if (pos != text.size())
      return fail("unexpected text after the dictionary");
    return true;
  }

  std::string error;

private:
  const std::string &text;
  size_t pos = 0;

  bool atEnd() const { return pos >= text.size(); }
  char peek() const { return atEnd() ? '\0' : text[pos]; }
  bool atQuote() const { return peek() == '\'' || peek() == '"'; }

  bool consume(char c) {
    if (atEnd() || text[pos] != c)
      return false;
    ++pos;
    return true;
  }

  void skipSpace() {
    while (!atEnd() && std::strchr(" \t\n\r\f\v", text[pos]) && text[pos])
      ++pos;
  }

  bool fail(const std::string &what) {
    std::string found;
    if (atEnd()) {
      found = "end of header";
    } else {
      unsigned char c = static_cast<unsigned char>(text[pos]);
      char buffer[8];
      if (c >= 0x20 && c < 0x7f)
        std::snprintf(buffer, sizeof buffer, "'%c'", c);
      else
        std::snprintf(buffer, sizeof buffer, "\\x%02x", c);
      found = buffer;
    }
    error = what + " at offset " + std::to_string(pos) + ", found " + found;
    return false;
  }

  bool parseString(std::string &out) {
    char quote = text[pos++];
    while (!atEnd() && text[pos] != quote) {
      if (text[pos] == '\\' && pos + 1 < text.size())
        ++pos; // Take the escaped character as it is.
      out += text[pos++];
    }
    if (!consume(quote))
      return fail("unterminated string");
    return true;
  }

  bool parseInt(PyValue &value) {
    value.kind = PyValue::Int;
    size_t start = pos;
    bool negative = false;
    if (peek() == '+' || peek() == '-')
      negative = text[pos++] == '-';
    if (!std::isdigit(static_cast<unsigned char>(peek())))
      return fail("expected a digit");
    uint64_t magnitude = 0;
    const uint64_t limit = std::numeric_limits<int64_t>::max();
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      uint64_t digit = static_cast<uint64_t>(text[pos++] - '0');
      if (magnitude > (limit - digit) / 10)
        value.overflow = true;
      else
        magnitude = magnitude * 10 + digit;
    }
    value.text = text.substr(start, pos - start);
    if (peek() == 'L' || peek() == 'l') // Python 2 longs, as old numpy wrote.
      ++pos;
    value.integer = negative ? -static_cast<int64_t>(magnitude)
                             : static_cast<int64_t>(magnitude);
    return true;
  }

  bool parseSequence(PyValue &value, unsigned depth) {
    char close = text[pos++] == '(' ? ')' : ']';
    value.kind = close == ')' ? PyValue::Tuple : PyValue::List;
    bool sawComma = false;
    skipSpace();
    while (!consume(close)) {
      PyValue item;
      if (!parseValue(item, depth + 1))
        return false;
      value.items.push_back(std::move(item));
      skipSpace();
      if (consume(',')) {
        sawComma = true;
        skipSpace();
        continue;
      }
      if (consume(close))
        break;
      return fail(std::string("expected ',' or '") + close + "'");
    }
    // As in Python, "(5)" is the integer 5, not a tuple.
    if (value.kind == PyValue::Tuple && value.items.size() == 1 && !sawComma) {
      PyValue inner = std::move(value.items.front());
      value = std::move(inner);
    }
    return true;
  }

  bool parseValue(PyValue &value, unsigned depth) {
    if (depth > kMaxNesting)
      return fail("tuples nested too deeply");
    char c = peek();
    if (c == '\'' || c == '"') {
      value.kind = PyValue::String;
      return parseString(value.text);
    }
    if (c == '(' || c == '[')
      return parseSequence(value, depth);
    if (c == '+' || c == '-' || std::isdigit(static_cast<unsigned char>(c)))
      return parseInt(value);
    size_t start = pos;
    while (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_')
      ++pos;
    std::string word = text.substr(start, pos - start);
    if (word == "True" || word == "False") {
      value.kind = PyValue::Bool;
      value.boolean = word == "True";
      return true;
    }
    if (word == "None") {
      value.kind = PyValue::None;
      return true;
    }
    pos = start;
    return fail("expected a value");
  }
};

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

struct FileCloser {
  void operator()(std::FILE *file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

/// The reader's state for one file: the path for messages and the stream.
class Reader {
public:
  Reader(const std::string &path, std::FILE *file) : path(path), file(file) {}

  normjit_status_t invalid(const std::string &what) const {
    return setError(NORMJIT_INVALID_ARGUMENT, path + ": " + what);
  }

  /// Reads up to `size` bytes into `buffer` and sets `got` to the count;
  /// only a read error (not the end of the file) fails.
  normjit_status_t read(void *buffer, size_t size, size_t &got) const {
    got = std::fread(buffer, 1, size, file);
    if (got < size && std::ferror(file))
      return setError(NORMJIT_IO_ERROR,
                      "cannot read '" + path + "': " + normjit::runtime::errorText(errno));
    return NORMJIT_OK;
  }

  /// Reads exactly `size` bytes of the header or reports it truncated.
  normjit_status_t readHeader(void *buffer, size_t size,
                              const char *what) const {
    size_t got = 0;
    NORMJIT_RETURN_IF_ERROR(read(buffer, size, got));
    if (got < size)
      return invalid(std::string("truncated header: expected ") +
                     std::to_string(size) + " bytes of " + what + ", found " +
                     std::to_string(got));
    return NORMJIT_OK;
  }

  /// The size of the file, or -1 when it is not a regular file.
  int64_t fileSize() const {
    struct stat info;
    if (fstat(fileno(file), &info) != 0 || !S_ISREG(info.st_mode))
      return -1;
    return static_cast<int64_t>(info.st_size);
  }

  const std::string &path;
  std::FILE *file;
};

/// `text` for a message: bytes outside printable ASCII as \xNN (a NUL
/// would end the C string of the message).
std::string printable(const std::string &text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      continue;
    }
    char escaped[5];
    std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
    out += escaped;
  }
  return out;
}

/// Maps a descr string to a dtype, or reports why it is not supported.
normjit_status_t parseDescr(const Reader &reader, const std::string &descr,
                            normjit_dtype_t &dtype) {
  if (descr.size() == 3) {
    std::string type = descr.substr(1);
    bool known = type == "f4" || type == "f2" || type == "u2";
    // '=' (native) and '|' (not applicable) are little-endian on the x86-64
    // and AArch64 hosts normjit runs on.
    if (known && (descr[0] == '<' || descr[0] == '=' || descr[0] == '|')) {
      dtype = type == "f4"   ? NORMJIT_F32
              : type == "f2" ? NORMJIT_F16
                             : NORMJIT_BF16;
      return NORMJIT_OK;
    }
    if (known && descr[0] == '>')
      return reader.invalid("big-endian dtype '" + printable(descr) +
                            "' is not supported; " + kExpectedDTypes);
  }
  return reader.invalid("unsupported dtype '" + printable(descr) + "'; " +
                        kExpectedDTypes);
}

/// Checks the parsed header and extracts dtype and shape from it.
normjit_status_t
interpretHeader(const Reader &reader,
                const std::vector<std::pair<std::string, PyValue>> &entries,
                normjit_dtype_t &dtype, std::vector<int64_t> &shape) {
  const PyValue *descr = nullptr, *fortranOrder = nullptr,
                *shapeValue = nullptr;
  for (const auto &[key, value] : entries) {
    const PyValue **slot = key == "descr"           ? &descr
                           : key == "fortran_order" ? &fortranOrder
                           : key == "shape"         ? &shapeValue
                                                    : nullptr;
    if (!slot)
      return reader.invalid("malformed header: unexpected key '" + key + "'");
    if (*slot)
      return reader.invalid("malformed header: duplicate key '" + key + "'");
    *slot = &value;
  }
  for (auto [value, key] :
       {std::pair(descr, "descr"), std::pair(fortranOrder, "fortran_order"),
        std::pair(shapeValue, "shape")})
    if (!value)
      return reader.invalid(std::string("malformed header: missing key '") +
                            key + "'");

  if (descr->kind == PyValue::List)
    return reader.invalid(std::string("unsupported structured dtype; ") +
                          kExpectedDTypes);
  if (descr->kind != PyValue::String)
    return reader.invalid("malformed header: 'descr' is not a string");
  NORMJIT_RETURN_IF_ERROR(parseDescr(reader, descr->text, dtype));

  if (fortranOrder->kind != PyValue::Bool)
    return reader.invalid(
        "malformed header: 'fortran_order' is not True or False");
  if (fortranOrder->boolean)
    return reader.invalid("fortran_order True is not supported; save a "
                          "C-contiguous array");

  if (shapeValue->kind != PyValue::Tuple)
    return reader.invalid("malformed header: 'shape' is not a tuple");
  std::vector<int64_t> dimensions;
  for (const PyValue &item : shapeValue->items) {
    if (item.kind != PyValue::Int)
      return reader.invalid(
          "malformed header: 'shape' is not a tuple of integers");
    if (item.overflow)
      return reader.invalid("shape dimension " + item.text + " is too large");
    dimensions.push_back(item.integer);
  }
  shape = std::move(dimensions);
  return NORMJIT_OK;
}

} // namespace

int64_t NpyArray::numElements() const {
  uint64_t count = 0;
  if (byteSize(shape, 1, count) != SizeCheck::Ok)
    return -1;
  return static_cast<int64_t>(count);
}

normjit_status_t normjit::runtime::readNpy(const std::string &path,
                                           NpyArray &out) {
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file)
    return setError(NORMJIT_IO_ERROR,
                    "cannot open '" + path + "': " + normjit::runtime::errorText(errno));
  struct stat info;
  if (fstat(fileno(file.get()), &info) == 0 && S_ISDIR(info.st_mode))
    return setError(NORMJIT_IO_ERROR,
                    "cannot open '" + path + "': " + normjit::runtime::errorText(EISDIR));
  Reader reader(path, file.get());

  // Magic and version.
  unsigned char prefix[kMagicSize + 2];
  size_t got = 0;
  NORMJIT_RETURN_IF_ERROR(reader.read(prefix, sizeof prefix, got));
  if (got < kMagicSize || std::memcmp(prefix, kMagic, kMagicSize) != 0)
    return reader.invalid("not a .npy file (bad magic)");
  if (got < sizeof prefix)
    return reader.invalid("truncated header: expected 2 bytes of version, "
                          "found " +
                          std::to_string(got - kMagicSize));
  unsigned major = prefix[kMagicSize], minor = prefix[kMagicSize + 1];
  if (major < 1 || major > 3 || minor != 0)
    return reader.invalid("unsupported .npy version " + std::to_string(major) +
                          "." + std::to_string(minor) +
                          "; expected 1.0, 2.0 or 3.0");

  // Header length: u16 for version 1.0, u32 after.
  unsigned char lengthBytes[4] = {0, 0, 0, 0};
  size_t lengthSize = major == 1 ? 2 : 4;
  NORMJIT_RETURN_IF_ERROR(
      reader.readHeader(lengthBytes, lengthSize, "header length"));
  uint32_t headerSize = 0;
  for (size_t i = lengthSize; i-- > 0;)
    headerSize = (headerSize << 8) | lengthBytes[i];
  if (headerSize > kMaxHeaderSize)
    return reader.invalid("header length " + std::to_string(headerSize) +
                          " exceeds the limit of " +
                          std::to_string(kMaxHeaderSize) + " bytes");

  // The header is read in full only once the file is known to hold it.
  uint64_t dataOffset = sizeof prefix + lengthSize + headerSize;
  int64_t fileSize = reader.fileSize();
  if (fileSize >= 0 && static_cast<uint64_t>(fileSize) < dataOffset)
    return reader.invalid("truncated header: expected " +
                          std::to_string(headerSize) +
                          " bytes of header, found " +
                          std::to_string(static_cast<uint64_t>(fileSize) -
                                         sizeof prefix - lengthSize));
  std::string header(headerSize, '\0');
  NORMJIT_RETURN_IF_ERROR(
      reader.readHeader(header.data(), header.size(), "header"));

  HeaderParser parser(header);
  std::vector<std::pair<std::string, PyValue>> entries;
  if (!parser.parse(entries))
    return reader.invalid("malformed header: " + parser.error);
  NpyArray array;
  NORMJIT_RETURN_IF_ERROR(
      interpretHeader(reader, entries, array.dtype, array.shape));

  uint64_t dataSize = 0;
  switch (byteSize(array.shape, normjit_dtype_size(array.dtype), dataSize)) {
  case SizeCheck::Ok:
    break;
  case SizeCheck::Negative:
    return reader.invalid("negative dimension in shape " +
                          shapeText(array.shape));
  case SizeCheck::Overflow:
    return reader.invalid("shape " + shapeText(array.shape) +
                          " is too large: its size in bytes overflows");
  }

  // With the file's size at hand, a mismatch is reported before reading.
  if (fileSize >= 0) {
    uint64_t available = static_cast<uint64_t>(fileSize) - dataOffset;
    if (available < dataSize)
      return reader.invalid("truncated data: expected " +
                            std::to_string(dataSize) + " bytes, found " +
                            std::to_string(available));
    if (available > dataSize)
      return reader.invalid(std::to_string(available - dataSize) +
                            " trailing bytes after the " +
                            std::to_string(dataSize) + " bytes of data");
    array.data.reserve(dataSize);
  }

  // Read in bounded pieces: the shape alone never decides an allocation.
  while (array.data.size() < dataSize) {
    size_t offset = array.data.size();
    size_t piece =
        static_cast<size_t>(std::min<uint64_t>(dataSize - offset, kReadChunk));
    array.data.resize(offset + piece);
    NORMJIT_RETURN_IF_ERROR(
        reader.read(array.data.data() + offset, piece, got));
    array.data.resize(offset + got);
    if (got < piece)
      return reader.invalid("truncated data: expected " +
                            std::to_string(dataSize) + " bytes, found " +
                            std::to_string(array.data.size()));
  }
  unsigned char extra;
  NORMJIT_RETURN_IF_ERROR(reader.read(&extra, 1, got));
  if (got != 0)
    return reader.invalid("trailing bytes after the " +
                          std::to_string(dataSize) + " bytes of data");

  out = std::move(array);
  return NORMJIT_OK;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

namespace {

/// Builds magic, version, header length and the padded header, as numpy's
/// format.write_array_header does; version 2.0 only when 1.0 cannot hold it.
std::string makeHeader(const char *descr, const std::vector<int64_t> &shape) {
  std::string dict = std::string("{'descr': '") + descr +
                     "', 'fortran_order': False, 'shape': " + shapeText(shape) +
                     ", }";
  if (!shape.empty()) {
    size_t digits = std::to_string(shape.front()).size();
    if (digits < kGrowthAxisMaxDigits)
      dict.append(kGrowthAxisMaxDigits - digits, ' ');
  }
  size_t textSize = dict.size() + 1; // and the final '\n'
  unsigned major = 1;
  size_t lengthSize = 2;
  size_t padding =
      kAlignment - (kMagicSize + 2 + lengthSize + textSize) % kAlignment;
  if (textSize + padding > 0xffff) {
    major = 2;
    lengthSize = 4;
    padding =
        kAlignment - (kMagicSize + 2 + lengthSize + textSize) % kAlignment;
  }
  uint64_t headerSize = textSize + padding;
  std::string out(kMagic, kMagicSize);
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < lengthSize; ++i)
    out += static_cast<char>((headerSize >> (8 * i)) & 0xff);
  out += dict;
  out.append(padding, ' ');
  out += '\n';
  return out;
}

bool writeAll(int fd, const void *data, size_t size) {
  const char *bytes = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t written = ::write(fd, bytes, size);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    bytes += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

std::atomic<unsigned> temporaryCounter{0};

} // namespace

normjit_status_t normjit::runtime::writeNpy(const std::string &path,
                                            const NpyArray &array) {
  StagedNpy staged;
  NORMJIT_RETURN_IF_ERROR(stageNpy(path, array, staged));
  return staged.commit();
}

normjit::runtime::StagedNpy::StagedNpy(StagedNpy &&other) noexcept {
  *this = std::move(other);
}

normjit::runtime::StagedNpy &
normjit::runtime::StagedNpy::operator=(StagedNpy &&other) noexcept {
  if (this != &other) {
    discard();
    path = std::move(other.path);
    target = std::move(other.target);
    temporary = std::move(other.temporary);
    header = std::move(other.header);
    inPlace = other.inPlace;
    other.temporary.clear();
    other.inPlace = nullptr;
  }
  return *this;
}

normjit::runtime::StagedNpy::~StagedNpy() { discard(); }

void normjit::runtime::StagedNpy::discard() {
  if (!temporary.empty())
    ::unlink(temporary.c_str());
  temporary.clear();
  inPlace = nullptr;
}

normjit_status_t normjit::runtime::StagedNpy::commit() {
  if (inPlace) {
    // A device, FIFO or socket (/dev/stdout, a pipe): written in place,
    // never replaced by a file.
    const NpyArray &array = *inPlace;
    inPlace = nullptr;
    int fd;
    do
      fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    bool ok = fd >= 0 && writeAll(fd, header.data(), header.size()) &&
              writeAll(fd, array.data.data(), array.data.size());
    int error = errno;
    if (fd >= 0 && ::close(fd) != 0 && ok) {
      ok = false;
      error = errno;
    }
    if (!ok)
      return setError(NORMJIT_IO_ERROR, "cannot write '" + path + "': " +
                                            normjit::runtime::errorText(error));
    return NORMJIT_OK;
  }
  if (temporary.empty())
    return setError(NORMJIT_INVALID_ARGUMENT,
                    "nothing staged to commit for '" + path + "'");
  if (::rename(temporary.c_str(), target.c_str()) != 0) {
    int error = errno;
    discard();
    return setError(NORMJIT_IO_ERROR, "cannot write '" + path + "': " +
                                          normjit::runtime::errorText(error));
  }
  temporary.clear();
  return NORMJIT_OK;
}

namespace {
/// Swaps two paths atomically (Linux's renameat2 with RENAME_EXCHANGE,
/// called through syscall() so that a C library older than glibc 2.28
/// builds too); -1 with errno ENOSYS where there is no such call, EINVAL
/// where the file system cannot.
/// NORMJIT_NO_RENAME_EXCHANGE=1 takes the other way, as such a file system
/// would (for the tests).
int exchangeFiles(const std::string &a, const std::string &b) {
  if (const char *off = std::getenv("NORMJIT_NO_RENAME_EXCHANGE");
      off && std::strcmp(off, "1") == 0) {
    errno = ENOSYS;
    return -1;
  }
#if defined(__linux__) && defined(SYS_renameat2)
  constexpr unsigned kRenameExchange = 1u << 1; // RENAME_EXCHANGE
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, a.c_str(),
                                    AT_FDCWD, b.c_str(), kRenameExchange));
#else
  (void)a;
  (void)b;
  errno = ENOSYS;
  return -1;
#endif
}
} // namespace

normjit_status_t
normjit::runtime::StagedNpy::commitAll(StagedNpy *const *files, size_t count,
                                       size_t *failedIndex) {
  // How a regular file was put in place, for the way back.
  enum class Placed { Created, Exchanged, MovedAside };
  struct Step {
    StagedNpy *file;
    Placed how;
    std::string aside;
  };
  std::vector<Step> done;
  auto undo = [&] {
    for (auto step = done.rbegin(); step != done.rend(); ++step) {
      StagedNpy &file = *step->file;
      switch (step->how) {
      case Placed::Created:
        ::unlink(file.target.c_str());
        break;
      case Placed::Exchanged:
        // Exchanged again, the temporary holds the new file: discarded.
        exchangeFiles(file.temporary, file.target);
        file.discard();
        break;
      case Placed::MovedAside:
        ::rename(step->aside.c_str(), file.target.c_str());
        break;
      }
    }
  };
  auto failed = [&](size_t index, int error) {
    const StagedNpy &file = *files[index];
    if (failedIndex)
      *failedIndex = index;
    undo();
    return setError(NORMJIT_IO_ERROR, "cannot write '" + file.path +
                                          "': " +
                                          normjit::runtime::errorText(error));
  };
  for (size_t i = 0; i < count; ++i) {
    StagedNpy &file = *files[i];
    if (file.inPlace)
      continue;
    if (file.temporary.empty()) {
      if (failedIndex)
        *failedIndex = i;
      undo();
      return setError(NORMJIT_INVALID_ARGUMENT,
                      "nothing staged to commit for '" + file.path + "'");
    }
    struct stat info;
    if (::lstat(file.target.c_str(), &info) != 0) {
      if (::rename(file.temporary.c_str(), file.target.c_str()) != 0)
        return failed(i, errno);
      file.temporary.clear();
      done.push_back({&file, Placed::Created, ""});
      continue;
    }
    if (exchangeFiles(file.temporary, file.target) == 0) {
      done.push_back({&file, Placed::Exchanged, ""});
      continue;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
      return failed(i, errno);
    // No exchange here: the old file moves aside, the new one in.
    std::string aside = file.temporary + ".old";
    if (::rename(file.target.c_str(), aside.c_str()) != 0)
      return failed(i, errno);
    if (::rename(file.temporary.c_str(), file.target.c_str()) != 0) {
      int error = errno;
      ::rename(aside.c_str(), file.target.c_str());
      return failed(i, error);
    }
    file.temporary.clear();
    done.push_back({&file, Placed::MovedAside, std::move(aside)});
  }
  for (size_t i = 0; i < count; ++i)
    if (files[i]->inPlace)
      if (normjit_status_t status = files[i]->commit()) {
        if (failedIndex)
          *failedIndex = i;
        undo();
        return status;
      }
  // Every one is in place: the old files go.
  for (Step &step : done) {
    if (step.how == Placed::Exchanged)
      step.file->discard();
    else if (step.how == Placed::MovedAside)
      ::unlink(step.aside.c_str());
  }
  return NORMJIT_OK;
}

normjit_status_t normjit::runtime::stageNpy(const std::string &path,
                                            const NpyArray &array,
                                            StagedNpy &out) {
  out = StagedNpy();
  const char *descr = descrOf(array.dtype);
  if (!descr)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    path + ": invalid dtype " +
                        std::to_string(static_cast<int>(array.dtype)));
  uint64_t dataSize = 0;
  switch (byteSize(array.shape, normjit_dtype_size(array.dtype), dataSize)) {
  case SizeCheck::Ok:
    break;
  case SizeCheck::Negative:
    return setError(NORMJIT_INVALID_ARGUMENT,
                    path + ": negative dimension in shape " +
                        shapeText(array.shape));
  case SizeCheck::Overflow:
    return setError(NORMJIT_INVALID_ARGUMENT,
                    path + ": shape " + shapeText(array.shape) +
                        " is too large: its size in bytes overflows");
  }
  if (array.data.size() != dataSize)
    return setError(NORMJIT_INVALID_ARGUMENT,
                    path + ": data has " + std::to_string(array.data.size()) +
                        " bytes but shape " + shapeText(array.shape) + " of " +
                        normjit_dtype_name(array.dtype) + " needs " +
                        std::to_string(dataSize));
  std::string header = makeHeader(descr, array.shape);

  // The file written: a symbolic link's target (the link stays a link).
  std::string target = path;
  struct stat info;
  if (::lstat(path.c_str(), &info) == 0 && S_ISLNK(info.st_mode)) {
    std::unique_ptr<char, decltype(&std::free)> resolved(
        ::realpath(path.c_str(), nullptr), &std::free);
    int error = errno;
    // A link to what has no path (/dev/stdout on a pipe: pipe:[N]) is
    // written through the link, in place (below, as a device is).
    struct stat through;
    bool special = !resolved && ::stat(path.c_str(), &through) == 0 &&
                   !S_ISREG(through.st_mode) && !S_ISDIR(through.st_mode);
    if (!resolved && !special)
      return setError(NORMJIT_IO_ERROR,
                      "cannot write '" + path +
                          "': a symbolic link whose target cannot be "
                          "resolved: " +
                          normjit::runtime::errorText(error));
    if (resolved)
      target = resolved.get();
  }
  bool exists = ::stat(target.c_str(), &info) == 0;
  if (exists && S_ISDIR(info.st_mode))
    return setError(NORMJIT_IO_ERROR,
                    "cannot write '" + path + "': it is a directory");
  if (exists && !S_ISREG(info.st_mode)) {
    out.path = path;
    out.target = target;
    out.header = std::move(header);
    out.inPlace = &array;
    return NORMJIT_OK;
  }
  // A temporary beside the destination, so that rename(2) stays within one
  // file system; its name is hidden and unique to this process and call.
  size_t slash = target.rfind('/');
  std::string directory =
      slash == std::string::npos ? "" : target.substr(0, slash + 1);
  std::string base = target.substr(directory.size()).substr(0, 64);
  std::string temporary;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temporary = directory + "." + base + ".tmp" + std::to_string(getpid()) +
                "." + std::to_string(temporaryCounter.fetch_add(1));
    do
      fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                  0666);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0)
    return setError(
        NORMJIT_IO_ERROR,
        "cannot write '" + path +
            "': cannot create a temporary file: " + normjit::runtime::errorText(errno));

  // A file replaced keeps its permissions.
  bool ok = (!exists || ::fchmod(fd, info.st_mode & 07777) == 0) &&
            writeAll(fd, header.data(), header.size()) &&
            writeAll(fd, array.data.data(), array.data.size()) &&
            ::fsync(fd) == 0;
  int error = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    error = errno;
  }
  if (!ok) {
    ::unlink(temporary.c_str());
    return setError(NORMJIT_IO_ERROR,
                    "cannot write '" + path + "': " + normjit::runtime::errorText(error));
  }
  out.path = path;
  out.target = target;
  out.temporary = temporary;
  return NORMJIT_OK;
}
