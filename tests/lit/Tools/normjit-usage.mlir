// The usage of `normjit` and of each subcommand: --help prints it on stdout
// with exit code 0; no or an unknown command prints it on stderr, exit 1.

// RUN: normjit --help | FileCheck %s --check-prefix=MAIN
// RUN: not normjit 2>&1 | FileCheck %s --check-prefix=MAIN
// MAIN: USAGE: normjit <command> [options]
// MAIN: COMMANDS:
// MAIN-NEXT: {{^}}  run
// MAIN-NEXT: {{^}}  bench
// MAIN-NEXT: {{^}}  tune
// MAIN-NEXT: {{^}}  cache
// MAIN: {{^}}  devices

// RUN: not normjit frobnicate 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// UNKNOWN: normjit: error: unknown command 'frobnicate'
// UNKNOWN: USAGE: normjit <command> [options]
// RUN: not normjit help frobnicate 2>&1 | FileCheck %s --check-prefix=UNKNOWN

// RUN: not normjit --op rms_norm 2>&1 | FileCheck %s --check-prefix=NO-COMMAND
// NO-COMMAND: normjit: error: expected a command before options, got '--op'

// RUN: normjit --version | FileCheck %s --check-prefix=VERSION
// VERSION: normjit {{[0-9]+\.[0-9]+\.[0-9]+}} (LLVM 22.{{[0-9.]+}})

// RUN: normjit run --help | FileCheck %s --check-prefix=RUNHELP
// RUN: normjit help run | FileCheck %s --check-prefix=RUNHELP
// RUN: normjit run --op rms_norm --bogus --help | FileCheck %s --check-prefix=RUNHELP
// RUNHELP: USAGE: normjit run --op layer_norm|rms_norm --x X.npy --out Y.npy [options]
// RUNHELP: --residual FILE
// RUNHELP: --out-dtype f32|f16|bf16
// RUNHELP: --help

// RUN: normjit bench -h | FileCheck %s --check-prefix=BENCH
// BENCH: USAGE: normjit bench --op layer_norm|rms_norm --rows N --cols C [options]
// BENCH: --[no-]gamma
// BENCH: --json

// RUN: normjit devices --help | FileCheck %s --check-prefix=DEVICES
// DEVICES: USAGE: normjit devices [--json]
