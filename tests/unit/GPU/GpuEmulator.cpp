//===- GpuEmulator.cpp - GPU kernels executed on the CPU ------------------===//
//
// Part of normjit. Turns the gpu.funcs of a GPU kernel module into host
// functions that call back into a SIMT runtime for thread and block ids,
// barriers and shuffles, JIT-compiles them, and runs them block by block
// with every GPU thread a fiber or an OS thread of its own.
//
//===----------------------------------------------------------------------===//

#include "GpuEmulator.h"

#include "KernelPipeline.h"

#include "normjit/runtime/CudaLaunch.h"
#include "normjit/runtime/status.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/raw_ostream.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

using namespace mlir;
using namespace normjit;
using normjit::test::emu::EmulatedGpuKernel;
namespace emu = normjit::test::emu;
namespace nc = normjit::runtime::cuda;

//===----------------------------------------------------------------------===//
// The gpu.funcs as host functions
//===----------------------------------------------------------------------===//

namespace {

/// Declares the emulator's callbacks in `module`.
void declareCallbacks(OpBuilder &b, ModuleOp module) {
  Type index = b.getIndexType(), f32 = b.getF32Type(), i32 = b.getI32Type();
  auto declare = [&](StringRef name, TypeRange inputs, TypeRange results) {
    auto func = func::FuncOp::create(b, module.getLoc(), name,
                                     b.getFunctionType(inputs, results));
    func.setPrivate();
  };
  declare("emu_thread_id", {}, index);
  declare("emu_block_id", {}, index);
  declare("emu_grid_dim", {}, index);
  declare("emu_barrier", {i32}, {});
  declare("emu_shuffle_xor", {f32, i32, i32, i32}, f32);
}

/// Records `op` as a site the runtime may report and returns its number.
/// Sites are described by the op's name and types (printing the op itself
/// would number the SSA values of the whole function each time).
Value addSite(OpBuilder &b, Operation *op, std::vector<std::string> &sites) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "site " << sites.size() << " ("
     << op->getParentOfType<func::FuncOp>().getName() << ": " << op->getName();
  if (auto shuffle = dyn_cast<gpu::ShuffleOp>(op)) {
    APInt offset, width;
    if (matchPattern(shuffle.getOffset(), m_ConstantInt(&offset)) &&
        matchPattern(shuffle.getWidth(), m_ConstantInt(&width)))
      os << " xor " << offset.getSExtValue() << " width "
         << width.getSExtValue();
  }
  for (Type type : op->getOperandTypes())
    if (isa<MemRefType, VectorType>(type))
      os << " " << type;
  for (Type type : op->getResultTypes())
    if (isa<VectorType>(type))
      os << " -> " << type;
  os << ")";
  sites.push_back(text);
  return arith::ConstantIntOp::create(
      b, op->getLoc(), static_cast<int64_t>(sites.size() - 1), 32);
}

/// Replaces the GPU ops of `func` (a former gpu.func body) by calls of the
/// emulator's callbacks; barriers and shuffles pass their site.
LogicalResult replaceGpuOps(func::FuncOp func,
                            std::vector<std::string> &sites) {
  SmallVector<Operation *> gpuOps;
  func.walk([&](Operation *op) {
    if (isa<gpu::GPUDialect>(op->getDialect()))
      gpuOps.push_back(op);
  });
  OpBuilder b(func.getContext());
  for (Operation *op : gpuOps) {
    b.setInsertionPoint(op);
    Location loc = op->getLoc();
    auto call = [&](StringRef callee, TypeRange results, ValueRange operands) {
      return func::CallOp::create(b, loc, callee, results, operands);
    };
    auto replaceIndex = [&](gpu::Dimension dimension, StringRef callee) {
      if (dimension != gpu::Dimension::x) {
        op->emitError("the emulator runs 1-D blocks and grids only");
        return failure();
      }
      op->getResult(0).replaceAllUsesWith(
          call(callee, b.getIndexType(), {}).getResult(0));
      return success();
    };
    LogicalResult result = success();
    if (auto id = dyn_cast<gpu::ThreadIdOp>(op)) {
      result = replaceIndex(id.getDimension(), "emu_thread_id");
    } else if (auto id = dyn_cast<gpu::BlockIdOp>(op)) {
      result = replaceIndex(id.getDimension(), "emu_block_id");
    } else if (auto dim = dyn_cast<gpu::GridDimOp>(op)) {
      result = replaceIndex(dim.getDimension(), "emu_grid_dim");
    } else if (isa<gpu::BarrierOp>(op)) {
      call("emu_barrier", {}, {addSite(b, op, sites)});
    } else if (auto shuffle = dyn_cast<gpu::ShuffleOp>(op)) {
      if (shuffle.getMode() != gpu::ShuffleMode::XOR ||
          !shuffle.getValue().getType().isF32())
        return op->emitError("the emulator has f32 xor shuffles only");
      Value value = call("emu_shuffle_xor", b.getF32Type(),
                         {shuffle.getValue(), shuffle.getOffset(),
                          shuffle.getWidth(), addSite(b, op, sites)})
                        .getResult(0);
      shuffle.getShuffleResult().replaceAllUsesWith(value);
      shuffle.getValid().replaceAllUsesWith(
          arith::ConstantOp::create(b, loc, b.getBoolAttr(true)).getResult());
    } else if (isa<gpu::ReturnOp>(op)) {
      func::ReturnOp::create(b, loc);
    } else {
      return op->emitError("the GPU emulator cannot run this op");
    }
    if (failed(result))
      return failure();
    op->erase();
  }
  return success();
}

/// Declarations of the access checkers of a module: one per memref type
/// (a call passes the memref's descriptor, so each type needs its own
/// declaration), all of a rank lowering to the same C signature.
class AccessCheckers {
public:
  AccessCheckers(ModuleOp module,
                 std::vector<EmulatedGpuKernel::Checker> &names)
      : module(module), names(names) {}

  /// The checker of memrefs of `type`: (memref, indices, lanes of the last
  /// index, alignment in bytes, element bytes, site) -> i32, 0 when the
  /// access is bad (and reported).
  FailureOr<StringRef> get(MemRefType type, Location loc) {
    if (type.getRank() < 1 || type.getRank() > 2) {
      emitError(loc, "the emulator checks accesses of 1-D and 2-D memrefs "
                     "only");
      return failure();
    }
    auto it = checkers.find(type);
    if (it != checkers.end())
      return it->second.getValue();
    OpBuilder b(module.getContext());
    b.setInsertionPointToStart(module.getBody());
    SmallVector<Type> inputs = {type};
    for (int64_t i = 0; i < type.getRank(); ++i)
      inputs.push_back(b.getIndexType());
    inputs.append(3, b.getIndexType());
    inputs.push_back(b.getI32Type());
    std::string name = "emu_check_access_" + std::to_string(checkers.size());
    auto func = func::FuncOp::create(b, loc, name,
                                     b.getFunctionType(inputs, b.getI32Type()));
    func.setPrivate();
    names.push_back({name, type.getRank()});
    StringAttr symbol = b.getStringAttr(name);
    checkers[type] = symbol;
    return symbol.getValue();
  }

private:
  ModuleOp module;
  std::vector<EmulatedGpuKernel::Checker> &names;
  llvm::DenseMap<Type, StringAttr> checkers;
};

/// Checks every memory access of `func` before it happens: every index
/// inside the memref (a vector's last lane too), the buffer not NULL and
/// the address aligned as the access's `alignment` says (a GPU faults on a
/// misaligned vector access; a CPU does not). A bad access is reported and
/// skipped (a load gives NaN), so that the host neither faults (x86's
/// aligned moves, NULL) nor touches memory the GPU would not.
LogicalResult checkAccesses(func::FuncOp func, AccessCheckers &checkers,
                            std::vector<std::string> &sites) {
  SmallVector<Operation *> accesses;
  WalkResult walk = func.walk([&](Operation *op) {
    if (isa<memref::LoadOp, memref::StoreOp, vector::LoadOp, vector::StoreOp>(
            op)) {
      accesses.push_back(op);
      return WalkResult::advance();
    }
    if (isa<memref::DimOp, func::CallOp>(op))
      return WalkResult::advance();
    for (Value operand : op->getOperands())
      if (isa<MemRefType>(operand.getType())) {
        op->emitError("the emulator does not check this memory access");
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  OpBuilder b(func.getContext());
  for (Operation *op : accesses) {
    Value memref;
    ValueRange indices;
    int64_t lanes = 1;
    std::optional<uint64_t> alignment;
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      memref = load.getMemRef();
      indices = load.getIndices();
      alignment = load.getAlignment();
    } else if (auto store = dyn_cast<memref::StoreOp>(op)) {
      memref = store.getMemRef();
      indices = store.getIndices();
      alignment = store.getAlignment();
    } else if (auto load = dyn_cast<vector::LoadOp>(op)) {
      memref = load.getBase();
      indices = load.getIndices();
      lanes = load.getVectorType().getNumElements();
      alignment = load.getAlignment();
      if (load.getVectorType().getRank() != 1)
        return op->emitError("the emulator checks 1-D vectors only");
    } else {
      auto vstore = cast<vector::StoreOp>(op);
      memref = vstore.getBase();
      indices = vstore.getIndices();
      lanes = vstore.getVectorType().getNumElements();
      alignment = vstore.getAlignment();
      if (vstore.getVectorType().getRank() != 1)
        return op->emitError("the emulator checks 1-D vectors only");
    }
    auto type = cast<MemRefType>(memref.getType());
    Location loc = op->getLoc();
    FailureOr<StringRef> checker = checkers.get(type, loc);
    if (failed(checker))
      return failure();
    b.setInsertionPoint(op);
    auto constant = [&](int64_t value) -> Value {
      return arith::ConstantIndexOp::create(b, loc, value);
    };
    SmallVector<Value> operands = {memref};
    operands.append(indices.begin(), indices.end());
    operands.push_back(constant(lanes));
    operands.push_back(constant(static_cast<int64_t>(alignment.value_or(0))));
    operands.push_back(constant(type.getElementTypeBitWidth() / 8));
    operands.push_back(addSite(b, op, sites));
    Value ok = func::CallOp::create(b, loc, *checker, b.getI32Type(), operands)
                   .getResult(0);
    Value good =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, ok,
                              arith::ConstantIntOp::create(b, loc, 0, 32));

    auto ifOp = scf::IfOp::create(b, loc, op->getResultTypes(), good,
                                  /*withElseRegion=*/true);
    for (auto [result, replacement] :
         llvm::zip(op->getResults(), ifOp.getResults()))
      result.replaceAllUsesWith(replacement);
    Block *thenBlock = ifOp.thenBlock();
    if (thenBlock->mightHaveTerminator()) {
      op->moveBefore(thenBlock->getTerminator());
      continue;
    }
    op->moveBefore(thenBlock, thenBlock->end());
    b.setInsertionPointToEnd(thenBlock);
    scf::YieldOp::create(b, loc, op->getResults());
    b.setInsertionPointToEnd(ifOp.elseBlock());
    SmallVector<Value> nans;
    for (Type resultType : op->getResultTypes()) {
      auto shaped = dyn_cast<ShapedType>(resultType);
      auto element =
          cast<FloatType>(shaped ? shaped.getElementType() : resultType);
      auto nan = FloatAttr::get(element,
                                APFloat::getQNaN(element.getFloatSemantics()));
      nans.push_back(arith::ConstantOp::create(
          b, loc,
          shaped ? TypedAttr(DenseElementsAttr::get(shaped, nan.getValue()))
                 : TypedAttr(nan)));
    }
    scf::YieldOp::create(b, loc, nans);
  }
  return success();
}

/// Moves every gpu.func of `module`'s gpu.modules into `module` as a
/// func.func: the kernel arguments, then one argument per workgroup
/// attribution (its memref without the address space). Records what a
/// launch needs to know of each in `entries`.
LogicalResult rewriteForHost(ModuleOp module,
                             std::vector<EmulatedGpuKernel::Entry> &entries,
                             std::vector<std::string> &sites,
                             std::vector<EmulatedGpuKernel::Checker> &names) {
  OpBuilder b(module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  declareCallbacks(b, module);
  AccessCheckers checkers(module, names);
  for (gpu::GPUModuleOp gpuModule :
       llvm::to_vector(module.getOps<gpu::GPUModuleOp>())) {
    for (gpu::GPUFuncOp gpuFunc :
         llvm::to_vector(gpuModule.getOps<gpu::GPUFuncOp>())) {
      EmulatedGpuKernel::Entry entry;
      entry.name = gpuFunc.getName().str();
      if (!gpuFunc.isKernel() || gpuFunc.getNumPrivateAttributions() != 0)
        return gpuFunc.emitError("the emulator runs kernels without private "
                                 "attributions only");
      DenseI32ArrayAttr known = gpuFunc.getKnownBlockSizeAttr();
      if (!known || known.size() != 3 || known[1] != 1 || known[2] != 1)
        return gpuFunc.emitError("kernel without a 1-D known_block_size");
      entry.blockSize = known[0];
      SmallVector<Type> argTypes(gpuFunc.getArgumentTypes());
      for (BlockArgument buffer : gpuFunc.getWorkgroupAttributions()) {
        auto type = cast<MemRefType>(buffer.getType());
        if (!type.getElementType().isF32() || !type.hasStaticShape() ||
            !type.getLayout().isIdentity())
          return gpuFunc.emitError("workgroup buffer of type ")
                 << type << ": the emulator has static f32 buffers only";
        auto hostType = MemRefType::get(type.getShape(), type.getElementType());
        buffer.setType(hostType);
        argTypes.push_back(hostType);
        entry.workgroupShapes.emplace_back(type.getShape().begin(),
                                           type.getShape().end());
      }
      auto func = func::FuncOp::create(b, gpuFunc.getLoc(), entry.name,
                                       b.getFunctionType(argTypes, {}));
      func.getBody().takeBody(gpuFunc.getBody());
      gpuFunc.erase();
      if (failed(replaceGpuOps(func, sites)) ||
          failed(checkAccesses(func, checkers, sites)))
        return failure();
      entries.push_back(std::move(entry));
    }
    gpuModule.erase();
  }
  module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  return verify(module);
}

//===----------------------------------------------------------------------===//
// The SIMT runtime
//===----------------------------------------------------------------------===//

constexpr int64_t kWarpSize = 32;
constexpr int64_t kMaxStaticSharedBytes = 48 * 1024;

struct Fiber;
struct ThreadBlock;

/// Errors of one launch: what would be undefined on a GPU.
class ErrorLog {
public:
  void add(const std::string &message) {
    std::lock_guard<std::mutex> lock(mutex);
    if (messages.size() < 8)
      messages.push_back(message);
    ++count;
  }
  std::string str() const {
    std::string text;
    for (const std::string &message : messages)
      text += (text.empty() ? "" : "; ") + message;
    if (count > static_cast<int64_t>(messages.size()))
      text += "; ... (" + std::to_string(count) + " in all)";
    return text;
  }
  bool empty() const { return count == 0; }

private:
  std::mutex mutex;
  std::vector<std::string> messages;
  int64_t count = 0;
};

/// Where threads wait for each other: a block's barrier, or a warp's
/// shuffles. `expected` counts the threads that have not returned.
struct SyncPoint {
  const char *what = "";
  int64_t expected = 0;
  int64_t arrived = 0;
  uint64_t generation = 0;
  int32_t site = -1;             ///< of the first thread of this generation
  std::mutex mutex;              // Schedule::Threads
  std::condition_variable ready; // Schedule::Threads
  std::vector<Fiber *> waiters;  // Schedule::Fibers
};

/// One GPU thread.
struct GpuThread {
  int64_t tid = 0;
  ThreadBlock *block = nullptr;
  int parity = 0;         ///< which shuffle slots the next shuffle uses
  Fiber *fiber = nullptr; ///< Schedule::Fibers
};

/// One block of a launch: its id, syncs, shuffle slots, workgroup buffers
/// and packed kernel arguments.
struct ThreadBlock {
  int64_t id = 0, grid = 0, size = 0;
  emu::Schedule schedule = emu::Schedule::Fibers;
  ErrorLog *errors = nullptr;
  const std::vector<std::string> *sites = nullptr;
  SyncPoint barrier;
  std::deque<SyncPoint> warps;
  std::vector<float> slots[2];
  std::vector<std::unique_ptr<float, decltype(&std::free)>> workgroup;
  std::vector<nc::KernelParamSlot> workgroupParams;
  std::vector<void *> packed;
  void (*function)(void **) = nullptr;
  std::vector<GpuThread> threads;
};

thread_local GpuThread *currentThread = nullptr;

//===--- Fibers -----------------------------------------------------------===//

/// A fiber's stack: mmap'd, with a guard page below it.
class FiberStack {
public:
  static constexpr size_t kBytes = 256 * 1024;
  FiberStack() {
    size_t page = 4096;
    base = mmap(nullptr, kBytes + page, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
      base = nullptr;
      return;
    }
    mprotect(base, page, PROT_NONE);
    stack = static_cast<char *>(base) + page;
  }
  ~FiberStack() {
    if (base)
      munmap(base, kBytes + 4096);
  }
  FiberStack(const FiberStack &) = delete;
  FiberStack &operator=(const FiberStack &) = delete;
  void *data() const { return stack; }

private:
  void *base = nullptr;
  void *stack = nullptr;
};

struct Fiber {
  ucontext_t context;
  GpuThread *thread = nullptr;
  bool done = false;
  SyncPoint *waitingAt = nullptr;
};

/// Runs the fibers of one block on the calling thread.
struct FiberScheduler {
  ucontext_t main;
  std::deque<Fiber *> ready;
  std::mt19937_64 rng;
  Fiber *running = nullptr;

  /// Makes `fibers` ready, in an order drawn from the seed.
  void wake(std::vector<Fiber *> &fibers) {
    std::shuffle(fibers.begin(), fibers.end(), rng);
    for (Fiber *fiber : fibers) {
      fiber->waitingAt = nullptr;
      ready.push_back(fiber);
    }
    fibers.clear();
  }
};

thread_local FiberScheduler *currentScheduler = nullptr;

/// Stacks kept between launches (fibers run on the thread that launches).
std::vector<std::unique_ptr<FiberStack>> &getFiberStacks() {
  thread_local std::vector<std::unique_ptr<FiberStack>> stacks;
  return stacks;
}

//===--- Syncs ------------------------------------------------------------===//

/// Releases the threads waiting at `sync` (its lock held in Threads mode).
void release(SyncPoint &sync, ThreadBlock &block) {
  sync.arrived = 0;
  sync.site = -1;
  ++sync.generation;
  if (block.schedule == emu::Schedule::Threads)
    sync.ready.notify_all();
  else
    currentScheduler->wake(sync.waiters);
}

/// What `site` is, for error messages.
std::string describeSite(const ThreadBlock &block, int32_t site) {
  return site >= 0 && static_cast<size_t>(site) < block.sites->size()
             ? (*block.sites)[site]
             : "site " + std::to_string(site);
}

/// Threads meeting at `sync` must all come from the same barrier or
/// shuffle (`site`): on a GPU, anything else is undefined.
void checkSite(SyncPoint &sync, GpuThread &thread, int32_t site) {
  if (sync.arrived == 0) {
    sync.site = site;
    return;
  }
  if (sync.site != site) {
    ThreadBlock &block = *thread.block;
    block.errors->add("block " + std::to_string(block.id) + ", thread " +
                      std::to_string(thread.tid) + " waits at " +
                      describeSite(block, site) + " while others wait at " +
                      describeSite(block, sync.site));
  }
}

/// The current thread waits at `sync` until every thread that has not
/// returned has arrived.
void arrive(SyncPoint &sync, GpuThread &thread, int32_t site) {
  ThreadBlock &block = *thread.block;
  if (block.schedule == emu::Schedule::Fibers) {
    checkSite(sync, thread, site);
    Fiber *fiber = thread.fiber;
    fiber->waitingAt = &sync;
    sync.waiters.push_back(fiber);
    if (++sync.arrived == sync.expected)
      release(sync, block);
    swapcontext(&fiber->context, &currentScheduler->main);
    return;
  }
  std::unique_lock<std::mutex> lock(sync.mutex);
  checkSite(sync, thread, site);
  uint64_t generation = sync.generation;
  if (++sync.arrived == sync.expected) {
    release(sync, block);
    return;
  }
  if (!sync.ready.wait_for(lock, std::chrono::seconds(60),
                           [&] { return sync.generation != generation; }))
    block.errors->add(std::string("block ") + std::to_string(block.id) +
                      ": deadlock: thread " + std::to_string(thread.tid) +
                      " waited 60 s at a " + sync.what);
}

/// The current thread returned: the syncs no longer wait for it. Threads
/// waiting at one of them while others return is undefined on a GPU.
void leave(SyncPoint &sync, GpuThread &thread) {
  ThreadBlock &block = *thread.block;
  std::unique_lock<std::mutex> lock(sync.mutex, std::defer_lock);
  if (block.schedule == emu::Schedule::Threads)
    lock.lock();
  --sync.expected;
  if (sync.arrived > 0 && sync.arrived == sync.expected) {
    block.errors->add("block " + std::to_string(block.id) + ": " +
                      std::to_string(sync.arrived) + " threads wait at a " +
                      sync.what + " that thread " + std::to_string(thread.tid) +
                      " (and maybe others) returned without reaching");
    release(sync, block);
  }
}

//===--- Callbacks --------------------------------------------------------===//

int64_t emuThreadId() { return currentThread->tid; }
int64_t emuBlockId() { return currentThread->block->id; }
int64_t emuGridDim() { return currentThread->block->grid; }

void emuBarrier(int32_t site) {
  GpuThread &thread = *currentThread;
  arrive(thread.block->barrier, thread, site);
}

/// Checks one access of `lanes` elements at `indices` of a memref (the
/// last index the first lane's): inside the memref, its buffer not NULL,
/// its address aligned to `alignment` bytes (when given). A bad access is
/// reported and returns 0: the kernel skips it. A fault (or worse) on a GPU.
int32_t checkAccess(int64_t rank, const void *aligned, int64_t offset,
                    const int64_t *sizes, const int64_t *strides,
                    const int64_t *indices, int64_t lanes, int64_t alignment,
                    int64_t elementBytes, int32_t site) {
  bool inBounds = true;
  int64_t linear = offset;
  for (int64_t i = 0; i < rank; ++i) {
    int64_t last = indices[i] + (i == rank - 1 ? lanes - 1 : 0);
    inBounds = inBounds && indices[i] >= 0 && last < sizes[i];
    linear += indices[i] * strides[i];
  }
  uintptr_t address = reinterpret_cast<uintptr_t>(aligned) +
                      static_cast<uintptr_t>(linear * elementBytes);
  bool isNull = aligned == nullptr;
  bool misaligned =
      alignment > 0 && address % static_cast<uintptr_t>(alignment);
  if (inBounds && !isNull && !misaligned)
    return 1;
  GpuThread &thread = *currentThread;
  ThreadBlock &block = *thread.block;
  std::string where = "[";
  for (int64_t i = 0; i < rank; ++i)
    where += (i ? ", " : "") + std::to_string(indices[i]);
  where += "]";
  block.errors->add(
      "block " + std::to_string(block.id) + ", thread " +
      std::to_string(thread.tid) + ": " + (inBounds ? "" : "out-of-bounds ") +
      (isNull ? "NULL-buffer " : "") +
      (misaligned ? "misaligned (" + std::to_string(alignment) + " bytes) "
                  : "") +
      "access at " + where + " of " + describeSite(block, site));
  return 0;
}

int32_t emuCheckAccess1(void *, void *aligned, int64_t offset, int64_t size0,
                        int64_t stride0, int64_t index0, int64_t lanes,
                        int64_t alignment, int64_t elementBytes, int32_t site) {
  return checkAccess(1, aligned, offset, &size0, &stride0, &index0, lanes,
                     alignment, elementBytes, site);
}

int32_t emuCheckAccess2(void *, void *aligned, int64_t offset, int64_t size0,
                        int64_t size1, int64_t stride0, int64_t stride1,
                        int64_t index0, int64_t index1, int64_t lanes,
                        int64_t alignment, int64_t elementBytes, int32_t site) {
  int64_t sizes[] = {size0, size1}, strides[] = {stride0, stride1},
          indices[] = {index0, index1};
  return checkAccess(2, aligned, offset, sizes, strides, indices, lanes,
                     alignment, elementBytes, site);
}

/// shfl.sync.bfly as MLIR's NVVM lowering of gpu.shuffle xor emits it:
/// member mask (-1 >> (32 - width)), clamp width - 1: lane ^ offset if it is
/// below width, else the thread's own value.
float emuShuffleXor(float value, int32_t offset, int32_t width, int32_t site) {
  GpuThread &thread = *currentThread;
  ThreadBlock &block = *thread.block;
  int64_t warp = thread.tid / kWarpSize, lane = thread.tid % kWarpSize;
  int parity = thread.parity;
  thread.parity ^= 1;
  block.slots[parity][thread.tid] = value;
  arrive(block.warps[warp], thread, site);
  auto undefined = [&](const std::string &why) {
    block.errors->add("block " + std::to_string(block.id) + ", thread " +
                      std::to_string(thread.tid) + ": shuffle xor " +
                      std::to_string(offset) + " width " +
                      std::to_string(width) + ": " + why);
    return std::numeric_limits<float>::quiet_NaN();
  };
  if (width < 1 || width > kWarpSize)
    return undefined("width out of range");
  int64_t warpBase = warp * kWarpSize;
  if (lane >= width)
    return undefined("the thread is not in the member mask");
  // The member mask may name lanes past the block's end (its last warp
  // partial): shfl.sync waits for the non-exited threads of the mask only.
  // Their values do not exist.
  int64_t source = lane ^ (offset & (kWarpSize - 1));
  if (source > width - 1)
    source = lane;
  if (warpBase + source >= block.size)
    return undefined("reads lane " + std::to_string(source) +
                     ", past the block's end");
  return block.slots[parity][warpBase + source];
}

//===--- Running blocks ---------------------------------------------------===//

/// Runs the kernel in the current thread, then leaves the block's syncs.
void runThread(GpuThread &thread) {
  ThreadBlock &block = *thread.block;
  currentThread = &thread;
  block.function(block.packed.data());
  currentThread = nullptr;
  leave(block.warps[thread.tid / kWarpSize], thread);
  leave(block.barrier, thread);
}

void fiberMain() {
  FiberScheduler &scheduler = *currentScheduler;
  Fiber *fiber = scheduler.running;
  runThread(*fiber->thread);
  fiber->done = true;
  swapcontext(&fiber->context, &scheduler.main);
}

/// Sets `fiber` up to run fiberMain on `stack` (a function of its own:
/// getcontext returns twice, which no caller's locals should see).
[[gnu::noinline]] void initFiber(Fiber &fiber, const FiberStack &stack) {
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = stack.data();
  fiber.context.uc_stack.ss_size = FiberStack::kBytes;
  fiber.context.uc_link = nullptr;
  makecontext(&fiber.context, fiberMain, 0);
}

llvm::Error runBlockAsFibers(ThreadBlock &block, uint64_t seed) {
  auto &stacks = getFiberStacks();
  while (static_cast<int64_t>(stacks.size()) < block.size) {
    stacks.push_back(std::make_unique<FiberStack>());
    if (!stacks.back()->data())
      return makeError(NORMJIT_INTERNAL, "cannot map a fiber stack");
  }
  std::vector<Fiber> fibers(static_cast<size_t>(block.size));
  FiberScheduler scheduler;
  scheduler.rng.seed(seed);
  std::vector<Fiber *> all;
  for (int64_t t = 0; t < block.size; ++t) {
    Fiber &fiber = fibers[t];
    fiber.thread = &block.threads[t];
    block.threads[t].fiber = &fiber;
    initFiber(fiber, *stacks[t]);
    all.push_back(&fiber);
  }
  scheduler.wake(all);
  currentScheduler = &scheduler;
  while (!scheduler.ready.empty()) {
    Fiber *fiber = scheduler.ready.front();
    scheduler.ready.pop_front();
    scheduler.running = fiber;
    // The fibers share this OS thread and its thread_local state.
    currentThread = fiber->thread;
    swapcontext(&scheduler.main, &fiber->context);
  }
  currentScheduler = nullptr;
  currentThread = nullptr;
  int64_t stuck = 0;
  std::string where;
  for (const Fiber &fiber : fibers)
    if (!fiber.done && ++stuck == 1)
      where = fiber.waitingAt ? fiber.waitingAt->what : "?";
  if (stuck)
    block.errors->add("block " + std::to_string(block.id) +
                      ": deadlock: " + std::to_string(stuck) +
                      " threads wait forever (one at a " + where + ")");
  return llvm::Error::success();
}

} // namespace

//===----------------------------------------------------------------------===//
// EmulatedGpuKernel
//===----------------------------------------------------------------------===//

/// The MLIR of a kernel's entries, each in a module of its own, lowered and
/// JIT-compiled when first launched (most launches never need the scalar
/// twin).
struct EmulatedGpuKernel::State {
  std::unique_ptr<detail::GpuKernelIR> ir;
  std::mutex mutex;
  std::vector<OwningOpRef<ModuleOp>> modules;
  std::vector<std::unique_ptr<ExecutionEngine>> engines;
  std::vector<void (*)(void **)> functions;
};

EmulatedGpuKernel::EmulatedGpuKernel() : state(std::make_unique<State>()) {}
EmulatedGpuKernel::~EmulatedGpuKernel() = default;

llvm::Expected<std::unique_ptr<EmulatedGpuKernel>>
EmulatedGpuKernel::compile(const GpuKernelRequest &request) {
  detail::initializeLLVMOnce();
  auto ir = detail::buildVerifiedGpuIR(request);
  if (!ir)
    return ir.takeError();
  MLIRContext &context = (*ir)->context;
  ModuleOp module = *(*ir)->module;
  const std::string &diagnostics = (*ir)->diagnostics.str();

  PassManager gpuPM(&context);
  detail::addNormToGpuPasses(gpuPM.nest<gpu::GPUModuleOp>());
  if (failed(gpuPM.run(module)))
    return makeError(NORMJIT_COMPILE_ERROR,
                     "convert-norm-to-gpu failed: " + diagnostics);

  std::unique_ptr<EmulatedGpuKernel> kernel(new EmulatedGpuKernel());
  kernel->request = request;
  if (failed(rewriteForHost(module, kernel->entries, kernel->sites,
                            kernel->checkers)))
    return makeError(NORMJIT_COMPILE_ERROR,
                     "cannot emulate the kernel: " + diagnostics);

  // One module per entry: the declarations and the entry's function.
  State &state = *kernel->state;
  for (const Entry &entry : kernel->entries) {
    OwningOpRef<ModuleOp> entryModule(ModuleOp::create(module.getLoc()));
    OpBuilder b(entryModule->getBodyRegion());
    for (func::FuncOp func : module.getOps<func::FuncOp>())
      if (func.isDeclaration() || func.getName() == entry.name)
        b.clone(*func.getOperation());
    state.modules.push_back(std::move(entryModule));
    state.engines.emplace_back();
    state.functions.push_back(nullptr);
  }
  state.ir = std::move(*ir);
  // The kernel itself now, on the caller's thread (tests compile several
  // kernels at once); its twin when first launched.
  auto function = kernel->getFunction(0);
  if (!function)
    return function.takeError();
  return std::move(kernel);
}

llvm::Expected<void (*)(void **)>
EmulatedGpuKernel::getFunction(size_t index) const {
  std::lock_guard<std::mutex> lock(state->mutex);
  if (state->functions[index])
    return state->functions[index];
  const Entry &entry = entries[index];
  ModuleOp module = *state->modules[index];
  const std::string &diagnostics = state->ir->diagnostics.str();
  PassManager pm(module.getContext());
  // The host functions: the CPU JIT's passes after its norm lowering, bf16
  // conversions always expanded.
  normjit::detail::addVectorToLLVMPasses(pm, /*nativeBf16=*/false);
  if (failed(pm.run(module)))
    return makeError(NORMJIT_COMPILE_ERROR, "host lowering of " + entry.name +
                                                " failed: " + diagnostics);

  // The CPU JIT's LLVM optimization (makeKernelLLVMOptimizer); the
  // emulated kernels have no C interface to inline into.
  auto transformer = detail::makeKernelLLVMOptimizer(entry.name);
  ExecutionEngineOptions options;
  options.transformer = transformer;
  options.jitCodeGenOptLevel = detail::kKernelCodeGenOptLevel;
  options.enableGDBNotificationListener = false;
  options.enablePerfNotificationListener = false;
  auto engine = ExecutionEngine::create(module, options);
  if (!engine)
    return makeError(NORMJIT_COMPILE_ERROR,
                     "JIT setup failed: " + llvm::toString(engine.takeError()));
  (*engine)->registerSymbols([&](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap symbols;
    auto add = [&](llvm::StringRef name, auto *function) {
      symbols[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(function),
                                 llvm::JITSymbolFlags::Exported};
    };
    add("emu_thread_id", &emuThreadId);
    add("emu_block_id", &emuBlockId);
    add("emu_grid_dim", &emuGridDim);
    add("emu_barrier", &emuBarrier);
    add("emu_shuffle_xor", &emuShuffleXor);
    for (const Checker &checker : checkers) {
      if (checker.rank == 1)
        add(checker.name, &emuCheckAccess1);
      else
        add(checker.name, &emuCheckAccess2);
    }
    return symbols;
  });
  auto function = (*engine)->lookupPacked(entry.name);
  if (!function)
    return makeError(NORMJIT_COMPILE_ERROR,
                     "JIT compilation of " + entry.name +
                         " failed: " + llvm::toString(function.takeError()));
  state->engines[index] = std::move(*engine);
  state->functions[index] = *function;
  return *function;
}

llvm::Expected<emu::LaunchReport>
EmulatedGpuKernel::launch(const normjit_run_args_t &args,
                          const LaunchOptions &options) const {
  const normjit_kernel_spec_t &spec = request.spec;
  const GpuConfig &config = request.config;
  if (normjit_status_t status = normjit_run_args_validate(&spec, &args))
    return makeError(status, normjit_last_error());
  LaunchReport report;
  if (args.rows == 0)
    return report;

  // The entry, grid and parameters of normjit_cuda_launch.
  std::string why =
      nc::misalignment(spec, args, static_cast<int>(config.vectorWidth));
  std::string name = request.name;
  if (!options.entry.empty()) {
    name = options.entry;
  } else if (!why.empty()) {
    name = getUnalignedEntryName(request.name, config);
    if (name == request.name)
      return makeError(NORMJIT_INVALID_ARGUMENT,
                       why + ", and the kernel has no unaligned variant");
  }
  auto found = llvm::find_if(
      entries, [&](const Entry &entry) { return entry.name == name; });
  if (found == entries.end())
    return makeError(NORMJIT_INTERNAL, "no kernel named " + name);
  const Entry *entry = &*found;
  auto function = getFunction(static_cast<size_t>(found - entries.begin()));
  if (!function)
    return function.takeError();
  int64_t blockSize = config.blockSize();
  if (entry->blockSize != blockSize)
    return makeError(NORMJIT_INTERNAL,
                     name + " has known_block_size " +
                         std::to_string(entry->blockSize) +
                         ", but the runtime launches blocks of " +
                         std::to_string(blockSize) + " threads");
  // Workgroup buffers are static shared memory: at most 48 KiB a block.
  int64_t sharedBytes = 0;
  for (const std::vector<int64_t> &shape : entry->workgroupShapes) {
    int64_t elements = 1;
    for (int64_t size : shape)
      elements *= size;
    sharedBytes += 4 * elements;
  }
  if (sharedBytes > kMaxStaticSharedBytes)
    return makeError(NORMJIT_INTERNAL,
                     name + " needs " + std::to_string(sharedBytes) +
                         " bytes of static shared memory, more than the " +
                         std::to_string(kMaxStaticSharedBytes) +
                         " a CUDA kernel may have");
  int64_t grid = nc::normGridSize(
      args.rows, static_cast<int>(config.rowsPerBlock), config.persistent,
      options.persistentBlocks, /*blocksPerSm=*/1);
  nc::NormKernelParams params;
  nc::packNormKernelParams(spec, args, params);
  report.entry = name;
  report.grid = grid;
  report.blockSize = blockSize;

  // Blocks: their syncs, shuffle slots, workgroup buffers (NaN: a read of
  // a slot nobody wrote shows in the results) and arguments.
  ErrorLog errors;
  std::deque<ThreadBlock> blocks;
  for (int64_t id = 0; id < grid; ++id) {
    ThreadBlock &block = blocks.emplace_back();
    block.id = id;
    block.grid = grid;
    block.size = blockSize;
    block.schedule = options.schedule;
    block.errors = &errors;
    block.sites = &sites;
    block.function = *function;
    block.barrier.what = "gpu.barrier";
    block.barrier.expected = blockSize;
    for (int64_t w = 0; w * kWarpSize < blockSize; ++w) {
      SyncPoint &warp = block.warps.emplace_back();
      warp.what = "gpu.shuffle";
      warp.expected = std::min(kWarpSize, blockSize - w * kWarpSize);
    }
    for (std::vector<float> &slots : block.slots)
      slots.assign(static_cast<size_t>(blockSize),
                   std::numeric_limits<float>::quiet_NaN());
    block.packed.assign(std::begin(params.pointers), std::end(params.pointers));
    size_t descriptorSlots = 0;
    for (const std::vector<int64_t> &shape : entry->workgroupShapes)
      descriptorSlots += 3 + 2 * shape.size();
    block.workgroupParams.resize(descriptorSlots);
    size_t next = 0;
    for (const std::vector<int64_t> &shape : entry->workgroupShapes) {
      int64_t elements = 1;
      for (int64_t size : shape)
        elements *= size;
      size_t bytes = static_cast<size_t>((elements * 4 + 63) / 64 * 64);
      auto *data = static_cast<float *>(std::aligned_alloc(64, bytes));
      if (!data)
        return makeError(NORMJIT_INTERNAL, "out of memory");
      std::fill(data, data + elements, std::numeric_limits<float>::quiet_NaN());
      block.workgroup.emplace_back(data, &std::free);
      auto slot = [&]() -> nc::KernelParamSlot & {
        block.packed.push_back(&block.workgroupParams[next]);
        return block.workgroupParams[next++];
      };
      slot().pointer = data;
      slot().pointer = data;
      slot().value = 0;
      for (int64_t size : shape)
        slot().value = size;
      int64_t stride = elements;
      for (int64_t size : shape) {
        stride /= size;
        slot().value = stride;
      }
    }
    block.threads.resize(static_cast<size_t>(blockSize));
    for (int64_t t = 0; t < blockSize; ++t) {
      block.threads[t].tid = t;
      block.threads[t].block = &block;
    }
  }

  if (options.schedule == Schedule::Fibers) {
    for (ThreadBlock &block : blocks)
      if (llvm::Error error = runBlockAsFibers(
              block, options.seed * 1000003u + static_cast<uint64_t>(block.id)))
        return std::move(error);
  } else {
    // One OS thread per GPU thread, each running its thread of every block
    // in turn (blocks have their own syncs, so a thread may start the next
    // block while others finish this one).
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(blockSize));
    for (int64_t t = 0; t < blockSize; ++t)
      threads.emplace_back([&blocks, t] {
        for (ThreadBlock &block : blocks)
          runThread(block.threads[t]);
      });
    for (std::thread &thread : threads)
      thread.join();
  }
  if (!errors.empty())
    return makeError(NORMJIT_INTERNAL,
                     name + " did what is undefined on a GPU: " + errors.str());
  return report;
}
