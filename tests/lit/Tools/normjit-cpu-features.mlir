// NORMJIT_DISABLE_CPU_FEATURES turns host features off for the JIT: the
// machine code a kernel gets, the default config, `normjit devices` and the
// tuning cache's fingerprint are those of a CPU without them (and without
// the features that need them).
// REQUIRES: host-avx512f

// RUN: rm -rf %t && mkdir -p %t/native %t/avx2 %t/sse
// DEFINE: %{bench} = normjit bench --op layer_norm --rows 8 --cols 1000 --threads 1 --reps 1 --warmup 0 --min-time 0

// This host: AVX-512, 16 f32 lanes.
// RUN: env NORMJIT_DUMP_OBJECTS=%t/native %{bench} | FileCheck %s --check-prefix=NATIVE
// NATIVE: config      #norm.config<cpu, vector_width = 16,
// RUN: llvm-objdump -d %t/native/normjit-0.o | FileCheck %s --check-prefix=ZMM
// ZMM: zmm

// Less AVX-512 (an AVX2 CPU): 8 lanes in ymm registers, never a zmm.
// RUN: env NORMJIT_DISABLE_CPU_FEATURES=avx512f NORMJIT_DUMP_OBJECTS=%t/avx2 %{bench} | FileCheck %s --check-prefix=AVX2
// AVX2: config      #norm.config<cpu, vector_width = 8,
// RUN: llvm-objdump -d %t/avx2/normjit-0.o | FileCheck %s --check-prefix=YMM --implicit-check-not=zmm
// YMM: ymm

// RUN: env NORMJIT_DISABLE_CPU_FEATURES=avx512f %{bench} | FileCheck %s --check-prefix=AVX2-TABLE
// AVX2-TABLE:      config      #norm.config<cpu, vector_width = 8,
// AVX2-TABLE-NEXT: cpu         compiled without {{.*}}avx512f{{.*}} (NORMJIT_DISABLE_CPU_FEATURES)
// RUN: env NORMJIT_DISABLE_CPU_FEATURES=avx512f %{bench} --json | FileCheck %s --check-prefix=AVX2-JSON
// AVX2-JSON: "config":"#norm.config<cpu, vector_width = 8,{{[^"]*}}","disabled_features":["{{.*}}avx512f{{.*}}"],

// Less AVX (an SSE CPU): 4 lanes in xmm registers only.
// RUN: env NORMJIT_DISABLE_CPU_FEATURES=avx NORMJIT_DUMP_OBJECTS=%t/sse %{bench} | FileCheck %s --check-prefix=SSE
// SSE: config      #norm.config<cpu, vector_width = 4,
// RUN: llvm-objdump -d %t/sse/normjit-0.o | FileCheck %s --check-prefix=XMM --implicit-check-not=ymm --implicit-check-not=zmm
// XMM: xmm

// `normjit devices` says what was turned off; the fingerprint (the tuning
// cache's key) no longer lists it. Names the host lacks are ignored.
// RUN: env NORMJIT_DISABLE_CPU_FEATURES=avx2,no-such-feature normjit devices | FileCheck %s --check-prefix=DEVICES
// DEVICES: cpu: {{.+}}, avx2 no, avx512f no, f16c yes, 4 f32 lanes per vector
// DEVICES-NEXT: turned off (NORMJIT_DISABLE_CPU_FEATURES): {{.*}}avx2,{{.*}}avx512f,
// DEVICES-NEXT: fingerprint: cpu|
// RUN: env NORMJIT_DISABLE_CPU_FEATURES=avx2 normjit devices | grep fingerprint | FileCheck %s --check-prefix=PRINT --implicit-check-not=avx2 --implicit-check-not=avx512
// PRINT: fingerprint: cpu|{{.*}}avx,
// RUN: env NORMJIT_DISABLE_CPU_FEATURES=avx2 normjit devices --json | FileCheck %s --check-prefix=JSON
// JSON: "fingerprint":"cpu|{{[^"]+}}","disabled_features":["{{.*}}avx2",

// Names LLVM does not know, and the x86-64 baseline's own features (which
// LLVM cannot generate code without), are ignored with a warning.
// RUN: env NORMJIT_DISABLE_CPU_FEATURES=sse2,AVX512F,64bit normjit devices 2>&1 | FileCheck %s --check-prefix=IGNORED
// IGNORED: normjit: warning: NORMJIT_DISABLE_CPU_FEATURES: 'sse2' is part of the x86-64 baseline, which every kernel needs: ignored
// IGNORED-NEXT: normjit: warning: NORMJIT_DISABLE_CPU_FEATURES: 'AVX512F' is not a feature LLVM knows for this CPU (LLVM's names, e.g. avx512f, avx2, avx): ignored
// IGNORED-NEXT: normjit: warning: NORMJIT_DISABLE_CPU_FEATURES: '64bit' is part of the x86-64 baseline, which every kernel needs: ignored
// IGNORED-NEXT: cpu: {{.+}}, avx512f yes,
// IGNORED-NOT: turned off
