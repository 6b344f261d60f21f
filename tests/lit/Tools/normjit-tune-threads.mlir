// RUN: rm -f %t.toml
// RUN: normjit tune --op layer_norm --rows 64 --cols 256 --threads 1 --budget 0.3 --candidates 4 --cache %t.toml | FileCheck %s
// RUN: normjit cache show --cache %t.toml | FileCheck %s --check-prefix=SHOW
// `normjit tune --threads N`: every candidate runs on N worker threads, and
// the entry records it (its key too, where the host has more cores than N:
// what wins depends on the thread count).

// CHECK: best      #norm.config<cpu, {{.*}}threads = 1,
// CHECK: default   #norm.config<cpu, {{.*}}threads = 1,

// SHOW: 1 entries
// SHOW: layer_norm:256:{{.*}} rows<=64{{( on 1 thread)?}}: {{[0-9.]+}} GB/s {{.*}}threads = 1,
