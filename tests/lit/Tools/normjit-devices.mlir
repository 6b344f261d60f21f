// `normjit devices` lists the host CPU, then each CUDA device or why there
// is none (see normjit-device-*.mlir for those lines).

// RUN: normjit devices | FileCheck %s
// CHECK: cpu: {{.+}}, {{[0-9]+}} core{{s?}}, avx2 {{yes|no}}, avx512f {{yes|no}}, f16c {{yes|no}}, {{[0-9]+}} f32 lanes per vector
// CHECK-NEXT: fingerprint: cpu|{{.+}}|{{[0-9]+$}}
// CHECK-NEXT: cuda{{(:0: .+, sm_[0-9]+, [0-9]+ SMs, .+)|(: not available \(.+\))}}

// RUN: normjit devices --json | FileCheck %s --check-prefix=JSON
// JSON: {"cpu":{"name":"{{.+}}","cores":{{[0-9]+}},"avx2":{{true|false}},"avx512f":{{true|false}},"f16c":{{true|false}},"vector_width":{{[0-9]+}},"fingerprint":"cpu|{{.+}}"},"cuda":{"available":{{true|false}},{{.*}}"devices":[{{.*}}]{{.*}}}}
