// RUN: rm -f %t.toml
// RUN: normjit tune --op rms_norm --rows 64 --cols 384 --dtype bf16 --residual --budget 0.3 --candidates 4 --cache %t.toml | FileCheck %s
// RUN: normjit cache show --cache %t.toml | FileCheck %s --check-prefix=SHOW
// RUN: normjit tune --op rms_norm --rows 64 --cols 384 --dtype bf16 --residual --cache %t.toml | FileCheck %s --check-prefix=AGAIN
// RUN: normjit tune --op rms_norm --rows 50 --cols 384 --dtype bf16 --residual --budget 0.3 --candidates 2 --cache %t.toml --force --strategy random --seed 7 | FileCheck %s
// `normjit tune` on one spec: the winner, runner-up, default and fusion
// decision, stored in the cache; asking again is a cache hit (rows 50 and
// 64 share the row bucket 64) unless --force.

// CHECK: spec      rms_norm rows={{[0-9]+}} cols=384 x=bf16 y=bf16 residual=bf16 sum=bf16
// CHECK: best      #norm.config<cpu, vector_width = {{[0-9]+}}
// CHECK-NEXT: {{[0-9.]+}} GB/s
// CHECK: default   #norm.config<cpu
// CHECK-NEXT: GB/s (tuned is {{[0-9.]+}}x)
// CHECK: fusion    {{fused|split}} wins by {{[0-9.]+}}x
// CHECK: searched  {{[0-9]+}} candidates ({{[0-9]+}} rejected) in
// CHECK: cache     {{.*}}.toml

// SHOW: 1 entries
// SHOW: rms_norm:384:{{.*}} rows<=64: {{[0-9.]+}} GB/s (default {{[0-9.]+}}) #norm.config<cpu, {{.*}}> {{fused|split}} by {{[0-9.]+}}x tuned {{[0-9T:Z-]+}}
// SHOW-NOT: other device

// AGAIN: cached    #norm.config<cpu,
// AGAIN: --force tunes again

// A mixed-precision spec (bf16 rows, f32 gamma and beta) that stores the
// row statistics: tuned and cached under its own key.
// RUN: rm -f %t-mixed.toml
// RUN: normjit tune --op layer_norm --rows 64 --cols 384 --dtype bf16 --gamma-dtype f32 --beta-dtype f32 --store-mean --store-rstd --budget 0.3 --candidates 4 --cache %t-mixed.toml | FileCheck %s --check-prefix=MIXED
// MIXED: spec      layer_norm rows=64 cols=384 x=bf16 y=bf16 gamma=f32 beta=f32 mean=f32 rstd=f32 eps=1e-05
// MIXED: best      #norm.config<cpu,
// 64 rows of 384 bf16 columns stay in the caches: the default for the row
// count (tiles of 8 rows) is timed beside the spec's default.
// MIXED: default   #norm.config<cpu,
// MIXED: for rows  #norm.config<cpu, {{.*}}row_group = 8>
// MIXED-NEXT: {{[0-9.]+}} GB/s (tuned is {{[0-9.]+}}x): the default for this row count, without a cache entry
// RUN: normjit tune --op layer_norm --rows 64 --cols 384 --dtype bf16 --gamma-dtype f32 --beta-dtype f32 --store-mean --store-rstd --cache %t-mixed.toml | FileCheck %s --check-prefix=MIXED-AGAIN
// MIXED-AGAIN: cached    #norm.config<cpu,
// The same rows without the statistics are another spec: not cached.
// RUN: normjit tune --op layer_norm --rows 64 --cols 384 --dtype bf16 --gamma-dtype f32 --beta-dtype f32 --budget 0.3 --candidates 4 --cache %t-mixed.toml | FileCheck %s --check-prefix=MIXED-OTHER
// MIXED-OTHER: best      #norm.config<cpu,
