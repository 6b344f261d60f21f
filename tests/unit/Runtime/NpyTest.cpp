//===- NpyTest.cpp - reading and writing .npy files -----------------------===//
//
// Part of normjit. Round trips, the header layout, hand-written files of
// every version, every way a file can be malformed, atomic writes, and a
// cross-check with numpy where python3 has it.
//
//===----------------------------------------------------------------------===//

#include "normjit/runtime/Npy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using normjit::runtime::NpyArray;
using normjit::runtime::readNpy;
using normjit::runtime::StagedNpy;
using normjit::runtime::stageNpy;
using normjit::runtime::writeNpy;

namespace {

const char *const kExpectedDTypes =
    "expected <f4 (f32), <f2 (f16) or <u2 (bf16 bits)";

void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream stream(path, std::ios::binary);
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(stream.good()) << path;
}

std::string readBytes(const std::string &path) {
  std::ifstream stream(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(stream), {});
}

/// A .npy file as written by hand: magic, version, header length (u16 for
/// version 1, u32 after), `header` exactly as given, then `data`.
std::string npyBytes(unsigned major, const std::string &header,
                     const std::string &data = "") {
  std::string bytes("\x93NUMPY", 6);
  bytes += static_cast<char>(major);
  bytes += '\0';
  size_t lengthSize = major == 1 ? 2 : 4;
  for (size_t i = 0; i < lengthSize; ++i)
    bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return bytes + header + data;
}

std::string f32Header(const std::string &shape) {
  return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n";
}

/// Bytes that differ from element to element and from array to array.
std::vector<uint8_t> pattern(size_t size, unsigned seed) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i)
    bytes[i] = static_cast<uint8_t>(i * 37 + seed * 11 + (i >> 8));
  return bytes;
}

NpyArray makeArray(normjit_dtype_t dtype, std::vector<int64_t> shape,
                   unsigned seed = 1) {
  NpyArray array;
  array.dtype = dtype;
  array.shape = std::move(shape);
  array.data = pattern(static_cast<size_t>(array.numElements()) *
                           normjit_dtype_size(dtype),
                       seed);
  return array;
}

/// Checks that a call failed with `expected` and a one-line message, in the
/// project's style, that contains every one of `parts`.
::testing::AssertionResult failsWith(normjit_status_t got,
                                     normjit_status_t expected,
                                     std::initializer_list<std::string> parts) {
  std::string message = normjit_last_error();
  if (got != expected)
    return ::testing::AssertionFailure()
           << "status " << normjit_status_name(got) << " instead of "
           << normjit_status_name(expected) << "; message: " << message;
  if (message.empty() || message.find('\n') != std::string::npos ||
      message.back() == '.')
    return ::testing::AssertionFailure()
           << "not a one-line message without a final period: " << message;
  for (const std::string &part : parts)
    if (message.find(part) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message '" << message << "' lacks '" << part << "'";
  return ::testing::AssertionSuccess() << message;
}

class NpyTest : public ::testing::Test {
protected:
  void SetUp() override {
    const char *base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base && *base ? base : "/tmp") + "/normjit-npy-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    ASSERT_NE(mkdtemp(buffer.data()), nullptr) << std::strerror(errno);
    dir = buffer.data();
  }

  void TearDown() override {
    std::error_code error;
    if (!dir.empty())
      std::filesystem::remove_all(dir, error);
  }

  std::string path(const std::string &name) const { return dir + "/" + name; }

  /// The names in the test's directory.
  std::vector<std::string> listDir() const {
    std::vector<std::string> names;
    for (const auto &entry : std::filesystem::directory_iterator(dir))
      names.push_back(entry.path().filename().string());
    return names;
  }

  /// Writes `bytes` to a file and reads it back with readNpy.
  normjit_status_t readFromBytes(const std::string &bytes, NpyArray &out,
                                 const std::string &name = "x.npy") {
    writeBytes(path(name), bytes);
    return readNpy(path(name), out);
  }

  std::string dir;
};

} // namespace

TEST_F(NpyTest, RoundTripsEveryDTypeAndShape) {
  const std::vector<std::vector<int64_t>> shapes = {
      {7}, {3, 5}, {0, 8}, {2, 0}, {}, {1, 1, 1, 4}, {0}};
  unsigned seed = 0;
  for (normjit_dtype_t dtype : {NORMJIT_F32, NORMJIT_F16, NORMJIT_BF16}) {
    for (const auto &shape : shapes) {
      SCOPED_TRACE(std::string(normjit_dtype_name(dtype)) + " rank " +
                   std::to_string(shape.size()));
      NpyArray written = makeArray(dtype, shape, ++seed);
      ASSERT_EQ(writeNpy(path("a.npy"), written), NORMJIT_OK)
          << normjit_last_error();
      NpyArray read;
      read.dtype = dtype == NORMJIT_F32 ? NORMJIT_F16 : NORMJIT_F32;
      ASSERT_EQ(readNpy(path("a.npy"), read), NORMJIT_OK)
          << normjit_last_error();
      EXPECT_EQ(read.dtype, dtype);
      EXPECT_EQ(read.shape, shape);
      EXPECT_EQ(read.data, written.data);
      EXPECT_EQ(read.numElements(), written.numElements());
    }
  }
}

TEST_F(NpyTest, NumElements) {
  NpyArray array;
  EXPECT_EQ(array.numElements(), 1); // rank 0
  array.shape = {3, 0, 5};
  EXPECT_EQ(array.numElements(), 0);
  array.shape = {3, 4};
  EXPECT_EQ(array.numElements(), 12);
  array.shape = {-1, 4};
  EXPECT_EQ(array.numElements(), -1);
  array.shape = {int64_t(1) << 32, int64_t(1) << 32};
  EXPECT_EQ(array.numElements(), -1);
}

TEST_F(NpyTest, HeaderIsAlignedAndFollowsTheFormat) {
  struct Case {
    normjit_dtype_t dtype;
    std::vector<int64_t> shape;
    std::string descr, shapeText;
  };
  const Case cases[] = {
      {NORMJIT_F32, {5}, "<f4", "(5,)"},
      {NORMJIT_F16, {3, 4}, "<f2", "(3, 4)"},
      {NORMJIT_BF16, {}, "<u2", "()"},
      {NORMJIT_F32, {123456789012, 0, 7}, "<f4", "(123456789012, 0, 7)"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.shapeText);
    NpyArray array = makeArray(c.dtype, c.shape);
    ASSERT_EQ(writeNpy(path("h.npy"), array), NORMJIT_OK)
        << normjit_last_error();
    std::string bytes = readBytes(path("h.npy"));
    ASSERT_GE(bytes.size(), 10u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    size_t headerSize = static_cast<uint8_t>(bytes[8]) |
                        static_cast<size_t>(static_cast<uint8_t>(bytes[9]))
                            << 8;
    EXPECT_EQ((10 + headerSize) % 64, 0u);
    ASSERT_EQ(bytes.size(), 10 + headerSize + array.data.size());
    std::string header = bytes.substr(10, headerSize);
    std::string dict = "{'descr': '" + c.descr +
                       "', 'fortran_order': False, 'shape': " + c.shapeText +
                       ", }";
    EXPECT_EQ(header.substr(0, dict.size()), dict);
    EXPECT_EQ(header.back(), '\n');
    EXPECT_EQ(header.find_first_not_of(' ', dict.size()), headerSize - 1)
        << "only spaces pad the header: " << header;
    EXPECT_EQ(bytes.substr(10 + headerSize),
              std::string(array.data.begin(), array.data.end()));
  }
  // numpy.save's layout for a rank-1 array: 21 digits of room for the first
  // dimension make the header 118 bytes, 128 with the prefix.
  ASSERT_EQ(writeNpy(path("v.npy"), makeArray(NORMJIT_F32, {5})), NORMJIT_OK);
  EXPECT_EQ(readBytes(path("v.npy")).size(), 128u + 20u);
}

TEST_F(NpyTest, ReadsHandWrittenVersionsAndOddHeaders) {
  std::string data48(48, '\x01');
  NpyArray out;

  // Version 2.0: u32 header length; double quotes, no spaces, key order
  // changed, trailing comma inside the tuple, no padding at all.
  ASSERT_EQ(readFromBytes(npyBytes(2,
                                   "{\"shape\":(3,4,),\"descr\":\"<f4\","
                                   "\"fortran_order\":False}",
                                   data48),
                          out),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(out.dtype, NORMJIT_F32);
  EXPECT_EQ(out.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(out.data, std::vector<uint8_t>(48, 1));

  // Version 3.0 (UTF-8 header) with spaces everywhere and a trailing comma.
  ASSERT_EQ(readFromBytes(npyBytes(3,
                                   "  { 'fortran_order' : False ,\t'shape' : "
                                   "( 2 , ) , 'descr' : '<f2' , }  \n",
                                   "abcd"),
                          out),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(out.dtype, NORMJIT_F16);
  EXPECT_EQ(out.shape, (std::vector<int64_t>{2}));

  // Native and not-applicable byte orders; a rank-0 shape.
  ASSERT_EQ(readFromBytes(npyBytes(1,
                                   "{'descr': '=f4', 'fortran_order': False, "
                                   "'shape': ()}\n",
                                   "wxyz"),
                          out),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(out.dtype, NORMJIT_F32);
  EXPECT_TRUE(out.shape.empty());
  EXPECT_EQ(out.numElements(), 1);
  ASSERT_EQ(readFromBytes(npyBytes(1,
                                   "{'descr': '|u2',\n 'fortran_order': "
                                   "False,\n 'shape': (1L, 3L)}",
                                   "abcdef"),
                          out),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(out.dtype, NORMJIT_BF16);
  EXPECT_EQ(out.shape, (std::vector<int64_t>{1, 3}));

  // An empty array: no data at all.
  ASSERT_EQ(readFromBytes(npyBytes(1, f32Header("(0, 8)")), out), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(out.shape, (std::vector<int64_t>{0, 8}));
  EXPECT_TRUE(out.data.empty());
}

TEST_F(NpyTest, MissingOrUnreadableFileIsAnIoError) {
  NpyArray out;
  std::string missing = path("missing.npy");
  EXPECT_TRUE(
      failsWith(readNpy(missing, out), NORMJIT_IO_ERROR,
                {"cannot open '" + missing + "'", std::strerror(ENOENT)}));
  EXPECT_TRUE(failsWith(readNpy(dir, out), NORMJIT_IO_ERROR,
                        {"cannot open '" + dir + "'", std::strerror(EISDIR)}));
}

TEST_F(NpyTest, RejectsFilesThatAreNotNpy) {
  NpyArray out;
  for (std::string bytes :
       {std::string(), std::string("hello, world\n"),
        std::string("\x89PNG\r\n\x1a\n"), std::string("\x93NUM", 4),
        std::string("\x93numpy\x01\x00", 8)}) {
    EXPECT_TRUE(failsWith(readFromBytes(bytes, out), NORMJIT_INVALID_ARGUMENT,
                          {path("x.npy") + ": ", "not a .npy file"}));
  }
}

TEST_F(NpyTest, RejectsTruncatedHeaders) {
  NpyArray out;
  std::string magic("\x93NUMPY", 6);
  EXPECT_TRUE(failsWith(readFromBytes(magic, out), NORMJIT_INVALID_ARGUMENT,
                        {"x.npy: ", "truncated header"}));
  EXPECT_TRUE(
      failsWith(readFromBytes(magic + std::string("\x01\x00\x10", 3), out),
                NORMJIT_INVALID_ARGUMENT,
                {"x.npy: ", "truncated header", "header length"}));
  EXPECT_TRUE(failsWith(
      readFromBytes(magic + std::string("\x02\x00\x10\x00\x00", 5), out),
      NORMJIT_INVALID_ARGUMENT, {"x.npy: ", "truncated header"}));
  std::string full = npyBytes(1, f32Header("(3,)"), std::string(12, '\0'));
  EXPECT_TRUE(failsWith(
      readFromBytes(full.substr(0, 30), out), NORMJIT_INVALID_ARGUMENT,
      {"x.npy: ", "truncated header: expected 58 bytes", "found 20"}));
  // A header length far beyond any sane header.
  EXPECT_TRUE(failsWith(
      readFromBytes(magic + std::string("\x02\x00\xff\xff\xff\xff{", 7), out),
      NORMJIT_INVALID_ARGUMENT,
      {"x.npy: ", "header length 4294967295 exceeds the limit"}));
}

TEST_F(NpyTest, RejectsUnsupportedVersions) {
  NpyArray out;
  for (auto [major, minor] : {std::pair(4, 0), std::pair(1, 1), std::pair(0, 0),
                              std::pair(255, 255)}) {
    std::string bytes = npyBytes(1, f32Header("(1,)"), "abcd");
    bytes[6] = static_cast<char>(major);
    bytes[7] = static_cast<char>(minor);
    EXPECT_TRUE(
        failsWith(readFromBytes(bytes, out), NORMJIT_INVALID_ARGUMENT,
                  {"x.npy: unsupported .npy version " + std::to_string(major) +
                   "." + std::to_string(minor)}));
  }
}

TEST_F(NpyTest, RejectsMalformedHeaders) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "expected '{'"},
      {"[1, 2]", "expected '{'"},
      {"{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"},
      {"{'descr': '<f4', 'shape': (1,)}", "missing key 'fortran_order'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
       "unexpected key 'x'"},
      {"{'shape': (1,), 'descr': '<f4', 'fortran_order': False, 'shape': ()}",
       "duplicate key 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk",
       "unexpected text after the dictionary"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
       "expected ','"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}",
       "expected ',' or '}'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 'abc}",
       "unterminated string"},
      {"{'descr': '<f4', 'fortran_order': false, 'shape': (1,)}",
       "expected a value"},
      {"{descr: '<f4', 'fortran_order': False, 'shape': (1,)}",
       "expected a string key"},
      {"{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}",
       "expected ':' after key 'descr'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}",
       "expected ',' or ')'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}",
       "expected a value"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
       "'shape' is not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1)}",
       "'shape' is not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': ('1',)}",
       "'shape' is not a tuple of integers"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': ((1,),)}",
       "'shape' is not a tuple of integers"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
       "'fortran_order' is not True or False"},
      {"{'descr': None, 'fortran_order': False, 'shape': (1,)}",
       "'descr' is not a string"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-,)}",
       "expected a digit"},
      {std::string("{'descr': '<f4', 'fortran_order': False\0, 'shape': (1,)}",
                   56),
       "found \\x00"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': " +
           std::string(5000, '(') + std::string(5000, ')') + "}",
       "nested too deeply"},
  };
  for (const auto &[header, problem] : cases) {
    SCOPED_TRACE(header.substr(0, 100));
    NpyArray out;
    EXPECT_TRUE(failsWith(readFromBytes(npyBytes(1, header, "abcd"), out),
                          NORMJIT_INVALID_ARGUMENT,
                          {path("x.npy") + ": malformed header", problem}));
  }
}

TEST_F(NpyTest, RejectsTruncatedData) {
  NpyArray out;
  EXPECT_TRUE(failsWith(
      readFromBytes(npyBytes(1, f32Header("(32, 32)"), std::string(100, 'x')),
                    out),
      NORMJIT_INVALID_ARGUMENT,
      {"x.npy: truncated data: expected 4096 bytes, found 100"}));
  EXPECT_TRUE(failsWith(readFromBytes(npyBytes(1, f32Header("()")), out),
                        NORMJIT_INVALID_ARGUMENT,
                        {"truncated data: expected 4 bytes, found 0"}));
}

TEST_F(NpyTest, RejectsTrailingBytes) {
  NpyArray out;
  EXPECT_TRUE(failsWith(
      readFromBytes(npyBytes(1, f32Header("(2,)"), std::string(11, 'x')), out),
      NORMJIT_INVALID_ARGUMENT,
      {"x.npy: 3 trailing bytes", "8 bytes of data"}));
  EXPECT_TRUE(
      failsWith(readFromBytes(npyBytes(1, f32Header("(0,)"), "\n"), out),
                NORMJIT_INVALID_ARGUMENT, {"x.npy: 1 trailing bytes"}));
}

TEST_F(NpyTest, RejectsUnsupportedDTypes) {
  NpyArray out;
  auto header = [](const std::string &descr) {
    return "{'descr': " + descr + ", 'fortran_order': False, 'shape': (1,)}";
  };
  EXPECT_TRUE(failsWith(
      readFromBytes(npyBytes(1, header("'<f8'"), "12345678"), out),
      NORMJIT_INVALID_ARGUMENT,
      {path("x.npy") + ": unsupported dtype '<f8'; " + kExpectedDTypes}));
  EXPECT_EQ(std::string(normjit_last_error()),
            path("x.npy") + ": unsupported dtype '<f8'; " + kExpectedDTypes);
  for (const char *descr : {"<i4", "<u4", "|b1", "<c8", "float32", "<f", ""})
    EXPECT_TRUE(failsWith(
        readFromBytes(
            npyBytes(1, header(std::string("'") + descr + "'"), "1234"), out),
        NORMJIT_INVALID_ARGUMENT,
        {"x.npy: unsupported dtype '" + std::string(descr) + "'"}));
  for (const char *descr : {">f4", ">f2", ">u2"})
    EXPECT_TRUE(failsWith(
        readFromBytes(
            npyBytes(1, header(std::string("'") + descr + "'"), "1234"), out),
        NORMJIT_INVALID_ARGUMENT,
        {"x.npy: big-endian dtype '" + std::string(descr) +
             "' is not supported",
         kExpectedDTypes}));
  EXPECT_TRUE(failsWith(
      readFromBytes(
          npyBytes(1, header("[('a', '<f4'), ('b', '<f4')]"), "12345678"), out),
      NORMJIT_INVALID_ARGUMENT, {"x.npy: unsupported structured dtype"}));
  // Bytes a message cannot hold as they are (a NUL would end it) are
  // written escaped, and the message goes on.
  EXPECT_TRUE(failsWith(
      readFromBytes(npyBytes(1, header(std::string("'<f4\0\x7f'", 7)), "1234"),
                    out),
      NORMJIT_INVALID_ARGUMENT,
      {"x.npy: unsupported dtype '<f4\\x00\\x7f'; " +
       std::string(kExpectedDTypes)}));
}

TEST_F(NpyTest, RejectsFortranOrder) {
  NpyArray out;
  EXPECT_TRUE(failsWith(
      readFromBytes(npyBytes(1,
                             "{'descr': '<f4', 'fortran_order': True, "
                             "'shape': (2, 3), }",
                             std::string(24, 'x')),
                    out),
      NORMJIT_INVALID_ARGUMENT,
      {"x.npy: fortran_order True is not supported"}));
}

TEST_F(NpyTest, RejectsNegativeAndHugeShapes) {
  NpyArray out;
  const std::pair<std::string, std::string> cases[] = {
      {"(-1, 4)", "negative dimension in shape (-1, 4)"},
      {"(4, -0, -2)", "negative dimension"},
      {"(4611686018427387904, 8)", "too large"},
      {"(9223372036854775807,)", "too large"},
      {"(4294967296, 4294967296, 0)", "too large"},
      {"(9223372036854775808,)",
       "shape dimension 9223372036854775808 is too large"},
      {"(99999999999999999999999999999,)", "is too large"},
  };
  for (const auto &[shape, problem] : cases)
    EXPECT_TRUE(
        failsWith(readFromBytes(npyBytes(1, f32Header(shape), "abcd"), out),
                  NORMJIT_INVALID_ARGUMENT, {"x.npy: ", problem}));
  // A shape that fits but needs 4 TiB: reported as truncated, never
  // allocated.
  EXPECT_TRUE(failsWith(
      readFromBytes(npyBytes(1, f32Header("(1099511627776,)"), "abcd"), out),
      NORMJIT_INVALID_ARGUMENT,
      {"x.npy: truncated data: expected 4398046511104 bytes, found 4"}));
}

TEST_F(NpyTest, FailuresLeaveTheOutputUntouched) {
  NpyArray out = makeArray(NORMJIT_F16, {2, 2});
  NpyArray before = out;
  EXPECT_NE(readFromBytes(npyBytes(1, f32Header("(32,)"), "abcd"), out),
            NORMJIT_OK);
  EXPECT_EQ(out.dtype, before.dtype);
  EXPECT_EQ(out.shape, before.shape);
  EXPECT_EQ(out.data, before.data);
}

TEST_F(NpyTest, ReadsFromAPipe) {
  // A FIFO has no size to check up front: the reader must still find
  // truncated data and trailing bytes while streaming.
  std::string fifo = path("pipe.npy");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  auto readThroughPipe = [&](const std::string &bytes, NpyArray &out) {
    std::thread writer([&] {
      int fd = ::open(fifo.c_str(), O_WRONLY);
      if (fd < 0)
        return;
      size_t done = 0;
      while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n <= 0)
          break; // The reader stopped early: EPIPE.
        done += static_cast<size_t>(n);
      }
      ::close(fd);
    });
    normjit_status_t status = readNpy(fifo, out);
    writer.join();
    return status;
  };
  auto previous = std::signal(SIGPIPE, SIG_IGN);
  NpyArray out;
  std::string data(3 * 100000 * 4, '\x7f'); // more than a pipe buffer
  EXPECT_EQ(readThroughPipe(npyBytes(1, f32Header("(3, 100000)"), data), out),
            NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(out.shape, (std::vector<int64_t>{3, 100000}));
  EXPECT_EQ(out.data.size(), data.size());
  EXPECT_TRUE(failsWith(
      readThroughPipe(npyBytes(1, f32Header("(1099511627776,)"), data), out),
      NORMJIT_INVALID_ARGUMENT,
      {"pipe.npy: truncated data: expected 4398046511104 bytes, found " +
       std::to_string(data.size())}));
  EXPECT_TRUE(failsWith(
      readThroughPipe(npyBytes(1, f32Header("(2,)"), "0123456789"), out),
      NORMJIT_INVALID_ARGUMENT, {"pipe.npy: trailing bytes"}));
  std::signal(SIGPIPE, previous);
}

TEST_F(NpyTest, WriteValidatesTheArray) {
  NpyArray array = makeArray(NORMJIT_F32, {2, 3});
  array.data.resize(12);
  EXPECT_TRUE(
      failsWith(writeNpy(path("w.npy"), array), NORMJIT_INVALID_ARGUMENT,
                {path("w.npy") +
                 ": data has 12 bytes but shape (2, 3) of f32 needs 24"}));
  array.shape = {-2, 3};
  EXPECT_TRUE(failsWith(writeNpy(path("w.npy"), array),
                        NORMJIT_INVALID_ARGUMENT,
                        {"w.npy: negative dimension in shape (-2, 3)"}));
  array.shape = {int64_t(1) << 62, 2};
  EXPECT_TRUE(failsWith(writeNpy(path("w.npy"), array),
                        NORMJIT_INVALID_ARGUMENT,
                        {"w.npy: shape", "too large"}));
  array = makeArray(NORMJIT_F32, {3});
  // 3 is in the enum's range (so no undefined behaviour) but no dtype.
  array.dtype = static_cast<normjit_dtype_t>(3);
  EXPECT_TRUE(failsWith(writeNpy(path("w.npy"), array),
                        NORMJIT_INVALID_ARGUMENT, {"w.npy: invalid dtype 3"}));
  EXPECT_TRUE(listDir().empty());
}

TEST_F(NpyTest, WritesAtomically) {
  // No directory: nothing is created, and the message names the path.
  std::string nowhere = path("missing/x.npy");
  EXPECT_TRUE(failsWith(
      writeNpy(nowhere, makeArray(NORMJIT_F32, {4})), NORMJIT_IO_ERROR,
      {"cannot write '" + nowhere + "'", std::strerror(ENOENT)}));
  EXPECT_TRUE(listDir().empty());

  // Overwriting replaces the file whole and leaves no temporary behind.
  NpyArray first = makeArray(NORMJIT_F32, {4}, 1);
  NpyArray second = makeArray(NORMJIT_BF16, {2, 5}, 2);
  ASSERT_EQ(writeNpy(path("x.npy"), first), NORMJIT_OK);
  ASSERT_EQ(writeNpy(path("x.npy"), second), NORMJIT_OK);
  NpyArray read;
  ASSERT_EQ(readNpy(path("x.npy"), read), NORMJIT_OK);
  EXPECT_EQ(read.dtype, NORMJIT_BF16);
  EXPECT_EQ(read.data, second.data);
  EXPECT_EQ(listDir(), std::vector<std::string>{"x.npy"});

  // A failed write leaves the old file as it was.
  std::string before = readBytes(path("x.npy"));
  NpyArray bad = makeArray(NORMJIT_F32, {4});
  bad.data.pop_back();
  EXPECT_NE(writeNpy(path("x.npy"), bad), NORMJIT_OK);
  EXPECT_EQ(readBytes(path("x.npy")), before);

  // The rename fails when the destination is a directory: the temporary is
  // removed again.
  ASSERT_EQ(mkdir(path("d.npy").c_str(), 0700), 0);
  EXPECT_TRUE(failsWith(writeNpy(path("d.npy"), first), NORMJIT_IO_ERROR,
                        {"cannot write '" + path("d.npy") + "'"}));
  auto names = listDir();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"d.npy", "x.npy"}));
  EXPECT_TRUE(std::filesystem::is_empty(path("d.npy")));
}

class NpyCommitTest : public NpyTest,
                      public ::testing::WithParamInterface<bool> {
protected:
  void SetUp() override {
    NpyTest::SetUp();
    // Without RENAME_EXCHANGE: the old files are moved aside instead.
    if (GetParam())
      ::setenv("NORMJIT_NO_RENAME_EXCHANGE", "1", 1);
  }
  void TearDown() override {
    ::unsetenv("NORMJIT_NO_RENAME_EXCHANGE");
    NpyTest::TearDown();
  }
};

INSTANTIATE_TEST_SUITE_P(Exchange, NpyCommitTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "MovedAside" : "Exchanged";
                         });

TEST_P(NpyCommitTest, CommitAllPutsBackWhatItPutInPlaceWhenOneFails) {
  NpyArray oldY = makeArray(NORMJIT_F32, {3}, 1);
  NpyArray newY = makeArray(NORMJIT_F32, {2, 2}, 2);
  NpyArray sum = makeArray(NORMJIT_BF16, {2, 2}, 3);
  NpyArray rstd = makeArray(NORMJIT_F32, {2}, 4);
  ASSERT_EQ(writeNpy(path("y.npy"), oldY), NORMJIT_OK);
  std::string before = readBytes(path("y.npy"));
  // Stages y (over a file), sum and rstd (new), then takes rstd's
  // temporary away so that its rename fails (ENOENT) after the other two
  // are in place.
  auto stageAll = [&](StagedNpy (&staged)[3]) {
    ASSERT_EQ(stageNpy(path("y.npy"), newY, staged[0]), NORMJIT_OK);
    ASSERT_EQ(stageNpy(path("sum.npy"), sum, staged[1]), NORMJIT_OK);
    auto beforeRstd = listDir();
    ASSERT_EQ(stageNpy(path("rstd.npy"), rstd, staged[2]), NORMJIT_OK);
    for (const std::string &name : listDir()) {
      if (std::find(beforeRstd.begin(), beforeRstd.end(), name) ==
          beforeRstd.end()) {
        ASSERT_EQ(::unlink(path(name).c_str()), 0);
      }
    }
  };
  {
    StagedNpy staged[3];
    stageAll(staged);
    StagedNpy *files[] = {&staged[0], &staged[1], &staged[2]};
    size_t failed = 99;
    EXPECT_TRUE(failsWith(StagedNpy::commitAll(files, 3, &failed),
                          NORMJIT_IO_ERROR,
                          {"cannot write '" + path("rstd.npy") + "'",
                           std::strerror(ENOENT)}));
    EXPECT_EQ(failed, 2u);
  }
  // y holds what it held, sum was not left behind, no temporary is left.
  EXPECT_EQ(readBytes(path("y.npy")), before);
  EXPECT_EQ(listDir(), std::vector<std::string>{"y.npy"});

  // Nothing staged for one: the same, before any file moved.
  {
    StagedNpy staged[2], empty;
    ASSERT_EQ(stageNpy(path("y.npy"), newY, staged[0]), NORMJIT_OK);
    ASSERT_EQ(stageNpy(path("sum.npy"), sum, staged[1]), NORMJIT_OK);
    StagedNpy *files[] = {&staged[0], &staged[1], &empty};
    size_t failed = 99;
    EXPECT_EQ(StagedNpy::commitAll(files, 3, &failed),
              NORMJIT_INVALID_ARGUMENT);
    normjit_clear_error();
    EXPECT_EQ(failed, 2u);
  }
  EXPECT_EQ(readBytes(path("y.npy")), before);
  EXPECT_EQ(listDir(), std::vector<std::string>{"y.npy"});

  // All of them: every destination replaced or created, no temporary (nor
  // the old y) left.
  {
    StagedNpy staged[3];
    ASSERT_EQ(stageNpy(path("y.npy"), newY, staged[0]), NORMJIT_OK);
    ASSERT_EQ(stageNpy(path("sum.npy"), sum, staged[1]), NORMJIT_OK);
    ASSERT_EQ(stageNpy(path("rstd.npy"), rstd, staged[2]), NORMJIT_OK);
    StagedNpy *files[] = {&staged[0], &staged[1], &staged[2]};
    ASSERT_EQ(StagedNpy::commitAll(files, 3), NORMJIT_OK);
  }
  auto names = listDir();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names,
            (std::vector<std::string>{"rstd.npy", "sum.npy", "y.npy"}));
  for (auto [name, array] : {std::pair{"y.npy", &newY}, {"sum.npy", &sum},
                             {"rstd.npy", &rstd}}) {
    NpyArray read;
    ASSERT_EQ(readNpy(path(name), read), NORMJIT_OK);
    EXPECT_EQ(read.data, array->data) << name;
  }
}

TEST_F(NpyTest, CrossChecksWithNumpy) {
  if (std::system("python3 -c 'import numpy' 2>/dev/null") != 0)
    GTEST_SKIP() << "python3 with numpy is not available";

  // Values that f16 and bf16 hold exactly: (k - 7) / 4 for k in [0, 15).
  std::vector<float> values(15);
  for (size_t k = 0; k < values.size(); ++k)
    values[k] = (static_cast<float>(k) - 7.0f) * 0.25f;
  auto encode = [&](normjit_dtype_t dtype, std::vector<int64_t> shape) {
    NpyArray array;
    array.dtype = dtype;
    array.shape = std::move(shape);
    for (float value : values) {
      uint8_t bytes[4];
      if (dtype == NORMJIT_F32) {
        std::memcpy(bytes, &value, 4);
      } else {
        uint16_t half = dtype == NORMJIT_F16 ? normjit_f32_to_f16(value)
                                             : normjit_f32_to_bf16(value);
        std::memcpy(bytes, &half, 2);
      }
      array.data.insert(array.data.end(), bytes,
                        bytes + normjit_dtype_size(dtype));
    }
    return array;
  };
  ASSERT_EQ(writeNpy(path("ours_f32.npy"), encode(NORMJIT_F32, {3, 5})),
            NORMJIT_OK);
  ASSERT_EQ(writeNpy(path("ours_f16.npy"), encode(NORMJIT_F16, {15})),
            NORMJIT_OK);
  ASSERT_EQ(writeNpy(path("ours_bf16.npy"), encode(NORMJIT_BF16, {3, 5})),
            NORMJIT_OK);
  NpyArray empty;
  empty.shape = {0, 8};
  ASSERT_EQ(writeNpy(path("ours_empty.npy"), empty), NORMJIT_OK);
  NpyArray scalar;
  float two = 2.5f;
  scalar.data.resize(4);
  std::memcpy(scalar.data.data(), &two, 4);
  ASSERT_EQ(writeNpy(path("ours_scalar.npy"), scalar), NORMJIT_OK);

  writeBytes(path("check.py"), R"(import sys
import numpy as np
d = sys.argv[1] + '/'
expected = (np.arange(15, dtype=np.float32).reshape(3, 5) - 7) * 0.25
a = np.load(d + 'ours_f32.npy')
assert a.dtype == np.float32 and a.shape == (3, 5), (a.dtype, a.shape)
assert np.array_equal(a, expected), a
h = np.load(d + 'ours_f16.npy')
assert h.dtype == np.float16 and h.shape == (15,), (h.dtype, h.shape)
assert np.array_equal(h, expected.reshape(15).astype(np.float16)), h
b = np.load(d + 'ours_bf16.npy')
assert b.dtype == np.uint16 and b.shape == (3, 5), (b.dtype, b.shape)
assert np.array_equal((b.astype(np.uint32) << 16).view(np.float32), expected)
e = np.load(d + 'ours_empty.npy')
assert e.dtype == np.float32 and e.shape == (0, 8), (e.dtype, e.shape)
s = np.load(d + 'ours_scalar.npy')
assert s.dtype == np.float32 and s.shape == () and s == 2.5, s
np.save(d + 'theirs_f32.npy', np.ascontiguousarray(expected.T))
np.save(d + 'theirs_f16.npy', expected.astype(np.float16))
bits = (expected.view(np.uint32) >> 16).astype(np.uint16)
np.save(d + 'theirs_bf16.npy', bits)
np.save(d + 'theirs_scalar.npy', np.float32(-1.5))
np.save(d + 'theirs_f64.npy', expected.astype(np.float64))
np.save(d + 'theirs_fortran.npy', np.asfortranarray(expected))
)");
  ASSERT_EQ(
      std::system(("python3 '" + path("check.py") + "' '" + dir + "'").c_str()),
      0)
      << "numpy rejected a file written by writeNpy";

  NpyArray read;
  ASSERT_EQ(readNpy(path("theirs_f32.npy"), read), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(read.dtype, NORMJIT_F32);
  ASSERT_EQ(read.shape, (std::vector<int64_t>{5, 3}));
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      float value;
      std::memcpy(&value, read.data.data() + 4 * (i * 3 + j), 4);
      EXPECT_EQ(value, values[static_cast<size_t>(j * 5 + i)]);
    }
  ASSERT_EQ(readNpy(path("theirs_f16.npy"), read), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(read.dtype, NORMJIT_F16);
  EXPECT_EQ(read.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(read.data, encode(NORMJIT_F16, {3, 5}).data);
  ASSERT_EQ(readNpy(path("theirs_bf16.npy"), read), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_EQ(read.dtype, NORMJIT_BF16);
  EXPECT_EQ(read.data, encode(NORMJIT_BF16, {3, 5}).data);
  ASSERT_EQ(readNpy(path("theirs_scalar.npy"), read), NORMJIT_OK)
      << normjit_last_error();
  EXPECT_TRUE(read.shape.empty());
  float scalarValue;
  ASSERT_EQ(read.data.size(), 4u);
  std::memcpy(&scalarValue, read.data.data(), 4);
  EXPECT_EQ(scalarValue, -1.5f);
  EXPECT_TRUE(failsWith(readNpy(path("theirs_f64.npy"), read),
                        NORMJIT_INVALID_ARGUMENT, {"unsupported dtype '<f8'"}));
  EXPECT_TRUE(failsWith(readNpy(path("theirs_fortran.npy"), read),
                        NORMJIT_INVALID_ARGUMENT,
                        {"fortran_order True is not supported"}));
}
