// `normjit aot --device cuda` fails on bad input with exit code 1 and
// exactly one line, `normjit: error: ...`, and leaves no output directory
// (nor a temporary one) behind.

// DEFINE: %{check} = FileCheck %s --implicit-check-not={{.}} --check-prefix
// DEFINE: %{spec} = --device cuda --name k --op rms_norm --cols 64 --no-cubin
// RUN: rm -rf %t && mkdir %t %t/out && touch %t/file
// RUN: cp %S/Inputs/aot-fake-ptxas.sh %t/ptxas && chmod +x %t/ptxas

// Chips.
// RUN: not normjit aot %{spec} --target sm_70 --out %t/out/a 2>&1 | %{check}=OLD
// OLD: normjit: error: GPU chip 'sm_70': normjit generates code for sm_80 and newer
// RUN: not normjit aot %{spec} --target sm_80,sm_xx --out %t/out/a 2>&1 | %{check}=UNKNOWN
// UNKNOWN: normjit: error: unknown GPU chip 'sm_xx'; expected one of sm_80, sm_86, {{.*}}sm_90{{.*}}
// RUN: not normjit aot %{spec} --target sm_85 --out %t/out/a 2>&1 | %{check}=NO-SUCH
// min_blocks_per_sm past what a chip's multiprocessors run (sm_86: 1536
// threads), which ptxas would ignore: refused for that chip.
// RUN: not normjit aot %{spec} --target sm_90,sm_86 --config '#norm.config<gpu, threads_per_row = 32, rows_per_block = 8, min_blocks_per_sm = 8>' --out %t/out/a 2>&1 | %{check}=MIN-BLOCKS
// MIN-BLOCKS: normjit: error: kernel 'k': config #norm.config<gpu, {{.*}}min_blocks_per_sm = 8>: min_blocks_per_sm = 8 blocks of 256 threads, but an sm_86 multiprocessor runs at most 16 blocks and 1536 threads
// A kernel of a spec file is named with its file and line.
// RUN: printf 'device = "cuda"\n[[kernel]]\nname = "a"\nop = "rms_norm"\ncols = 1024\ndtype = "bf16"\n\n[[kernel]]\nname = "a_unaligned"\nop = "rms_norm"\ncols = 64\n' > %t/twin.toml
// RUN: not normjit aot --specs %t/twin.toml --no-cubin --out %t/out/a 2>&1 | %{check}=TWIN
// TWIN: normjit: error: kernel 'a_unaligned' ({{.*}}twin.toml:8): its GPU entry 'a_unaligned' is also an entry of kernel 'a' (the unaligned twin of a kernel is <name>_unaligned)
// NO-SUCH: normjit: error: unknown GPU chip 'sm_85'; expected one of sm_80, {{.*}}
// RUN: not normjit aot %{spec} --target sm_90a --out %t/out/a 2>&1 | %{check}=ARCH
// ARCH: normjit: error: GPU chip 'sm_90a': arch-specific chips are not supported; use sm_90 (its PTX also runs on newer chips)
// RUN: not normjit aot %{spec} --target x86-64-v3 --out %t/out/a 2>&1 | %{check}=CPU-TARGET
// CPU-TARGET: normjit: error: unknown GPU chip 'x86-64-v3'; expected one of sm_80, {{.*}}
// RUN: not normjit aot %{spec} --target sm_90,sm_90 --out %t/out/a 2>&1 | %{check}=TWICE
// TWICE: normjit: error: GPU chip 'sm_90' is given more than once
// RUN: not normjit aot %{spec} --target sm_80,,sm_90 --out %t/out/a 2>&1 | %{check}=EMPTY
// EMPTY: normjit: error: --target 'sm_80,,sm_90' has an empty target name

// Configs for the other backend, and options for CPU kernels only.
// RUN: not normjit aot %{spec} --config '#norm.config<cpu, vector_width = 8>' --out %t/out/a 2>&1 | %{check}=CPU-CONFIG
// CPU-CONFIG: normjit: error: invalid config '#norm.config<cpu, vector_width = 8>': it is for the cpu backend; --device cuda compiles GPU kernels, which take #norm.config<gpu, ...>
// RUN: not normjit aot --name k --op rms_norm --cols 64 --config '#norm.config<gpu, threads_per_row = 32>' --out %t/out/a 2>&1 | %{check}=GPU-CONFIG
// GPU-CONFIG: normjit: error: invalid config '#norm.config<gpu, threads_per_row = 32>': it is for the gpu backend; GPU kernels are compiled with --device cuda
// RUN: not normjit aot %{spec} --accumulators 2 --out %t/out/a 2>&1 | %{check}=CPU-KNOB
// CPU-KNOB: normjit: error: --accumulators is for CPU kernels; GPU kernels take --config '#norm.config<gpu, ...>'
// RUN: not normjit aot %{spec} --cache %t/cache.toml --out %t/out/a 2>&1 | %{check}=CACHE
// CACHE: normjit: error: --cache is for CPU kernels; GPU kernels take --config '#norm.config<gpu, ...>'
// RUN: not normjit aot --specs %S/Inputs/aot-gpu-specs.toml --cache %t/cache.toml --out %t/out/a 2>&1 | %{check}=CACHE
// RUN: not normjit aot --name k --op rms_norm --cols 64 --no-cubin --out %t/out/a 2>&1 | %{check}=NO-CUBIN
// NO-CUBIN: normjit: error: --no-cubin is for --device cuda
// RUN: not normjit aot --device tpu --name k --op rms_norm --cols 64 --out %t/out/a 2>&1 | %{check}=DEVICE
// DEVICE: normjit: error: unknown --device 'tpu'; expected cpu or cuda

// Kernels the GPU backend cannot compile.
// RUN: not normjit aot %{spec} --config '#norm.config<gpu, threads_per_row = 256, rows_per_block = 8>' --out %t/out/a 2>&1 | %{check}=BLOCK
// BLOCK: normjit: error: invalid config '#norm.config<gpu, threads_per_row = 256, rows_per_block = 8>': threads_per_row * rows_per_block = 2048 exceeds 1024 threads per block
// RUN: not normjit aot --device cuda --name k --op layer_norm --cols 2048 --config '#norm.config<gpu, row_storage = registers, threads_per_row = 32, elements_per_thread = 8>' --out %t/out/a 2>&1 | %{check}=REGISTERS
// REGISTERS: normjit: error: kernel 'k': invalid GPU kernel: 'norm.layer_norm' op config keeps the row in registers, but threads_per_row * elements_per_thread = 256 is less than the 2048 columns
// RUN: not normjit aot --device cuda --name k --op layer_norm --cols 65536 --config '#norm.config<gpu, row_storage = shared>' --out %t/out/a 2>&1 | %{check}=SHARED
// SHARED: normjit: error: kernel 'k': invalid GPU kernel: 'norm.layer_norm' op config keeps rows in shared memory: {{.*}} more than the 48128 bytes a block may keep rows in{{.*}}
// RUN: not normjit aot %{spec} --config '#norm.config<gpu, fuse_residual = false>' --out %t/out/a 2>&1 | %{check}=UNFUSED
// UNFUSED: normjit: error: invalid config '#norm.config<gpu, fuse_residual = false>': the GPU backend always fuses the residual add (fuse_residual = false is a CPU choice)
// RUN: not normjit aot --device cuda --name k --op rms_norm --cols 64 --store-mean --out %t/out/a 2>&1 | %{check}=MEAN
// MEAN: normjit: error: rms_norm computes no mean; store_mean must be 0

// ptxas that is missing or fails: no output at all (use --no-cubin for PTX).
// RUN: not env NORMJIT_PTXAS=%t/missing-ptxas normjit aot --device cuda --name k --op rms_norm --cols 64 --out %t/out/a 2>&1 | %{check}=NO-PTXAS
// NO-PTXAS: normjit: error: NORMJIT_PTXAS '{{.*}}missing-ptxas' is not an executable file
// RUN: not env NORMJIT_PTXAS=%t/ptxas FAKE_PTXAS_FAIL=sm_90 normjit aot --device cuda --name k --op rms_norm --cols 64 --out %t/out/a 2>&1 | %{check}=PTXAS-FAILS
// PTXAS-FAILS: normjit: error: ptxas '{{.*}}ptxas' cannot assemble the PTX for sm_90: ptxas fatal   : Value 'sm_90' is not defined for option 'gpu-name' (pass --no-cubin for PTX only)

// Output directories that cannot be written, or must not be replaced.
// RUN: not normjit aot %{spec} --out %t/file/out 2>&1 | %{check}=NOT-DIR
// NOT-DIR: normjit: error: cannot write the output directory '{{.*}}file/out': '{{.*}}file' is not a directory
// RUN: not normjit aot %{spec} --out %t/missing/out 2>&1 | %{check}=NO-PARENT
// NO-PARENT: normjit: error: cannot write the output directory '{{.*}}missing/out': its parent directory '{{.*}}missing' does not exist
// RUN: mkdir %t/out/existing && touch %t/out/existing/notes.txt
// RUN: not normjit aot %{spec} --out %t/out/existing --force 2>&1 | %{check}=NOT-OUTPUT
// NOT-OUTPUT: normjit: error: the output directory '{{.*}}existing' is not empty and holds no normjit aot manifest; refusing to replace it

// Malformed spec files: the file, the line and the reason.
// RUN: not normjit aot --specs %S/Inputs/aot-gpu-bad-device.toml --out %t/out/a 2>&1 | %{check}=BAD-DEVICE
// BAD-DEVICE: normjit: error: malformed spec file {{.*}}aot-gpu-bad-device.toml:2: unknown device 'tpu'; expected cpu or cuda
// RUN: not normjit aot --specs %S/Inputs/aot-gpu-cpu-config.toml --out %t/out/a 2>&1 | %{check}=FILE-CPU-CONFIG
// FILE-CPU-CONFIG: normjit: error: malformed spec file {{.*}}aot-gpu-cpu-config.toml:8: kernel 'k': invalid config '#norm.config<cpu, vector_width = 8>': it is for the cpu backend; --device cuda compiles GPU kernels, which take #norm.config<gpu, ...>
// A CPU spec file compiled for cuda: its CPU configs are errors on their line.
// RUN: not normjit aot --specs %S/Inputs/aot-specs.toml --device cuda --out %t/out/a 2>&1 | %{check}=CPU-FILE
// CPU-FILE: normjit: error: malformed spec file {{.*}}aot-specs.toml:19: kernel 'add_rms_bf16': invalid config '#norm.config<cpu, accumulators = 2>': it is for the cpu backend; --device cuda compiles GPU kernels, which take #norm.config<gpu, ...>
// RUN: not normjit aot --specs %S/Inputs/aot-not-toml.toml --device cuda --out %t/out/a 2>&1 | %{check}=SYNTAX
// SYNTAX: normjit: error: malformed spec file {{.*}}aot-not-toml.toml:1: {{.+}}

// No failure above left an output or a temporary directory behind, and the
// directory that was not an output is as it was.
// RUN: ls -A %t/out | FileCheck %s --check-prefix=LEFT --implicit-check-not={{.}}
// LEFT: existing
// RUN: ls -A %t/out/existing | FileCheck %s --check-prefix=KEPT --implicit-check-not={{.}}
// KEPT: notes.txt
// RUN: ls -A %t | FileCheck %s --check-prefix=TOP --implicit-check-not={{.}}
// TOP: file
// TOP-NEXT: out
// TOP-NEXT: ptxas
// TOP-NEXT: twin.toml
