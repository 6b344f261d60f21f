// `normjit aot` fails on bad input with exit code 1 and exactly one line,
// `normjit: error: ...`, and leaves no output directory (nor a temporary
// one) behind.

// DEFINE: %{check} = FileCheck %s --implicit-check-not={{.}} --check-prefix
// DEFINE: %{spec} = --name k --op rms_norm --cols 64
// RUN: rm -rf %t && mkdir %t %t/out && touch %t/file

// RUN: not normjit aot %{spec} --target x86-64-v9 --out %t/out/a 2>&1 | %{check}=TARGET
// TARGET: normjit: error: unknown CPU target 'x86-64-v9'; expected native, x86-64, x86-64-v2, x86-64-v3, x86-64-v4 or an x86-64 CPU name LLVM knows (e.g. znver4, sapphirerapids)
// RUN: not normjit aot %{spec} --target native,i686 --out %t/out/a 2>&1 | %{check}=TARGET32
// TARGET32: normjit: error: unknown CPU target 'i686'; expected native, {{.*}}
// RUN: not normjit aot %{spec} --target x86-64,,native --out %t/out/a 2>&1 | %{check}=EMPTY-TARGET
// EMPTY-TARGET: normjit: error: --target 'x86-64,,native' has an empty target name
// RUN: not normjit aot %{spec} --target native,native --out %t/out/a 2>&1 | %{check}=TWICE
// TWICE: normjit: error: CPU target 'native' is given more than once

// Output directories that cannot be written, or must not be replaced.
// RUN: not normjit aot %{spec} --out %t/file/out 2>&1 | %{check}=NOT-DIR
// NOT-DIR: normjit: error: cannot write the output directory '{{.*}}file/out': '{{.*}}file' is not a directory
// RUN: not normjit aot %{spec} --out %t/missing/out 2>&1 | %{check}=NO-PARENT
// NO-PARENT: normjit: error: cannot write the output directory '{{.*}}missing/out': its parent directory '{{.*}}missing' does not exist
// RUN: mkdir %t/out/existing
// RUN: not normjit aot %{spec} --out %t/out/existing 2>&1 | %{check}=EXISTS
// EXISTS: normjit: error: the output directory '{{.*}}existing' already exists; pass --force to replace it
// RUN: touch %t/out/existing/notes.txt
// RUN: not normjit aot %{spec} --out %t/out/existing --force 2>&1 | %{check}=NOT-OUTPUT
// NOT-OUTPUT: normjit: error: the output directory '{{.*}}existing' is not empty and holds no normjit aot manifest; refusing to replace it
// RUN: not normjit aot %{spec} --out %t/file --force 2>&1 | %{check}=FILE
// A file named like a kernel or a target of the earlier output is the
// user's, not the output's: --force refuses to replace it.
// RUN: rm -rf %t-earlier && normjit aot %{spec} --target x86-64 --no-cache --out %t-earlier > /dev/null
// RUN: touch %t-earlier/k %t-earlier/x86-64
// RUN: not normjit aot %{spec} --target x86-64 --no-cache --out %t-earlier --force 2>&1 | %{check}=USER-FILE
// USER-FILE: normjit: error: the output directory '{{.*}}earlier' holds 'k', which is not a file of the earlier output its manifest describes; refusing to replace it (and lose that)
// RUN: ls %t-earlier/k %t-earlier/x86-64
// FILE: normjit: error: the output directory '{{.*}}file' exists and is not a directory

// Malformed spec files: the file, the line and the reason.
// RUN: not normjit aot --specs %S/Inputs/aot-not-toml.toml --out %t/out/a 2>&1 | %{check}=SYNTAX
// SYNTAX: normjit: error: malformed spec file {{.*}}aot-not-toml.toml:1: {{.+}}
// RUN: not normjit aot --specs %S/Inputs/aot-unknown-key.toml --out %t/out/a 2>&1 | %{check}=KEY
// KEY: normjit: error: malformed spec file {{.*}}aot-unknown-key.toml:5: unknown key 'colour' in a {{\[\[}}kernel]] table
// RUN: not normjit aot --specs %S/Inputs/aot-wrong-type.toml --out %t/out/a 2>&1 | %{check}=TYPE
// TYPE: normjit: error: malformed spec file {{.*}}aot-wrong-type.toml:4: 'cols' must be an integer
// RUN: not normjit aot --specs %S/Inputs/aot-bad-config.toml --out %t/out/a 2>&1 | %{check}=CONFIG
// CONFIG: normjit: error: malformed spec file {{.*}}aot-bad-config.toml:7: kernel 'k': invalid config '#norm.config<cpu, vector_width = 3>': 'vector_width' must be a power of two, got 3
// RUN: not normjit aot --specs %S/Inputs/aot-duplicate.toml --out %t/out/a 2>&1 | %{check}=DUPLICATE
// DUPLICATE: normjit: error: malformed spec file {{.*}}aot-duplicate.toml:7: kernel 'k' is defined more than once
// RUN: not normjit aot --specs %t/missing.toml --out %t/out/a 2>&1 | %{check}=NO-SPECS
// NO-SPECS: normjit: error: cannot read spec file '{{.*}}missing.toml': No such file or directory

// Kernels the backend cannot compile.
// RUN: not normjit aot %{spec} --vector-width 3 --out %t/out/a 2>&1 | %{check}=WIDTH
// WIDTH: normjit: error: kernel 'k': vector_width must be a power of two in [1, 64], got 3
// RUN: not normjit aot %{spec} --accumulators 17 --out %t/out/a 2>&1 | %{check}=ACCUMULATORS
// ACCUMULATORS: normjit: error: kernel 'k': accumulators must be in [1, 16], got 17
// RUN: not normjit aot --name k --op rms_norm --cols 2147483648 --out %t/out/a 2>&1 | %{check}=COLS
// COLS: normjit: error: cols = 2147483648 is more than normjit supports (2^30)
// RUN: not normjit aot %{spec} --store-sum --out %t/out/a 2>&1 | %{check}=SUM
// SUM: normjit: error: store_sum needs a residual: without one the sum would only copy x
// RUN: not normjit aot %{spec} --config '#norm.config<gpu, threads_per_row = 32>' --out %t/out/a 2>&1 | %{check}=GPU
// GPU: normjit: error: invalid config '#norm.config<gpu, threads_per_row = 32>': it is for the gpu backend; GPU kernels are compiled with --device cuda

// Bad command lines.
// RUN: not normjit aot --name my-kernel --op rms_norm --cols 64 --out %t/out/a 2>&1 | %{check}=NAME
// NAME: normjit: error: --name 'my-kernel' may hold only letters, digits and '_' (it is a C identifier)
// RUN: not normjit aot %{spec} --lib int --out %t/out/a 2>&1 | %{check}=LIB
// LIB: normjit: error: library name 'int' is a C or C++ keyword
// RUN: not normjit aot --name math --op rms_norm --cols 64 --out %t/out/a 2>&1 | %{check}=NAME-LIB
// NAME-LIB: normjit: error: library name 'math' would make math.h, the name of a standard C header; the library is named after --name unless --lib NAME is given
// RUN: not normjit aot --specs %S/Inputs/aot-specs.toml --op rms_norm --out %t/out/a 2>&1 | %{check}=BOTH
// BOTH: normjit: error: --op cannot be used with --specs: the spec file describes the kernels
// RUN: not normjit aot %{spec} 2>&1 | %{check}=NO-OUT
// NO-OUT: normjit: error: missing required option '--out' (see 'normjit aot --help')
// RUN: not normjit aot --op rms_norm --cols 64 --out %t/out/a 2>&1 | %{check}=NO-NAME
// NO-NAME: normjit: error: missing required option '--name' (see 'normjit aot --help')
// Errors of the whole file, at the line that causes them: kernels whose C
// functions clash, a target twice, a column count out of range; a library
// named after a file whose name is no C identifier says so.
// RUN: printf '[[kernel]]\nname = "a"\nop = "rms_norm"\ncols = 64\n\n[[kernel]]\nname = "a_spec"\nop = "rms_norm"\ncols = 64\n' > %t/clash.toml
// RUN: not normjit aot --specs %t/clash.toml --out %t/out/a 2>&1 | %{check}=CLASH
// CLASH: normjit: error: malformed spec file {{.*}}clash.toml:7: kernel 'a_spec': its C function 'a_spec' is also one of kernel 'a' (a kernel NAME defines NAME, NAME_spec and NAME_target)
// RUN: printf 'targets = ["x86-64",\n  "x86-64-v3",\n  "x86-64"]\n[[kernel]]\nname = "a"\nop = "rms_norm"\ncols = 64\n' > %t/targets.toml
// RUN: not normjit aot --specs %t/targets.toml --out %t/out/a 2>&1 | %{check}=TARGETS
// TARGETS: normjit: error: malformed spec file {{.*}}targets.toml:3: target 'x86-64' is given more than once
// RUN: printf '[[kernel]]\nname = "a"\nop = "rms_norm"\ncols = 0\n' > %t/cols.toml
// RUN: not normjit aot --specs %t/cols.toml --out %t/out/a 2>&1 | %{check}=ZERO-COLS
// ZERO-COLS: normjit: error: malformed spec file {{.*}}cols.toml:4: kernel 'a': cols must be at least 1, got 0
// RUN: printf '[[kernel]]\nname = "a"\nop = "rms_norm"\ncols = 64\n' > %t/my-kernels.toml
// RUN: not normjit aot --specs %t/my-kernels.toml --out %t/out/a 2>&1 | %{check}=FILE-NAME
// FILE-NAME: normjit: error: library name 'my-kernels' may hold only letters, digits and '_' (it is a C identifier); the library is named after the spec file when the file has no `library = "NAME"`: set one there or give --lib NAME
// RUN: not normjit aot %{spec} --algorithm fast --out %t/out/a 2>&1 | %{check}=ALGORITHM
// ALGORITHM: normjit: error: unknown --algorithm 'fast'; expected two_pass or welford

// No failure above left an output or a temporary directory behind, and the
// directory that was not an output is as it was.
// RUN: ls -A %t/out | FileCheck %s --check-prefix=LEFT --implicit-check-not={{.}}
// LEFT: existing
// RUN: ls -A %t/out/existing | FileCheck %s --check-prefix=KEPT --implicit-check-not={{.}}
// KEPT: notes.txt
// RUN: ls -A %t | FileCheck %s --check-prefix=TOP --implicit-check-not={{.}}
// TOP: clash.toml
// TOP-NEXT: cols.toml
// TOP-NEXT: file
// TOP-NEXT: my-kernels.toml
// TOP-NEXT: out
// TOP-NEXT: targets.toml
