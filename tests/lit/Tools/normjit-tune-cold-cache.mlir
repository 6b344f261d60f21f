// A result tuned with --cold-cache is an entry of its own (cold_cache =
// true in its key): a warm tune of the same spec does not take it as
// already tuned, a cold one does, `cache show` tells them apart, a merge
// keeps both, and `normjit run` uses the warm entry.
// DEFINE: %{npy} = %python %S/Inputs/npy.py
// RUN: rm -rf %t && mkdir -p %t
// RUN: normjit tune --op rms_norm --rows 64 --cols 96 --budget 0.2 --candidates 2 --cold-cache --cache %t/c.toml | FileCheck %s --check-prefix=COLD
// RUN: FileCheck %s --check-prefix=FILE < %t/c.toml
// RUN: normjit tune --op rms_norm --rows 64 --cols 96 --budget 0.2 --candidates 2 --cold-cache --cache %t/c.toml | FileCheck %s --check-prefix=COLD-AGAIN
// RUN: normjit tune --op rms_norm --rows 64 --cols 96 --budget 0.2 --candidates 2 --cold-cache --json --cache %t/c.toml | FileCheck %s --check-prefix=COLD-JSON
// RUN: normjit tune --op rms_norm --rows 64 --cols 96 --budget 0.2 --candidates 2 --cache %t/c.toml | FileCheck %s --check-prefix=WARM
// RUN: normjit cache show --cache %t/c.toml | FileCheck %s --check-prefix=SHOW
// RUN: cp %t/c.toml %t/d.toml
// RUN: normjit cache merge --cache %t/m.toml %t/c.toml %t/d.toml | FileCheck %s --check-prefix=MERGE
// RUN: grep -c '^cold_cache = true$' %t/m.toml | FileCheck %s --check-prefix=ONE
// The cold entry alone: run does not use it.
// RUN: normjit tune --op rms_norm --rows 64 --cols 96 --budget 0.2 --candidates 2 --cold-cache --cache %t/cold.toml > /dev/null
// RUN: %{npy} gen %t/x.npy --dtype f32 --shape 64,96
// RUN: %{npy} gen %t/g.npy --dtype f32 --shape 96 --seed 3 --offset 1
// RUN: normjit run --op rms_norm --x %t/x.npy --gamma %t/g.npy --out %t/y.npy --verbose --cache %t/cold.toml 2>&1 | FileCheck %s --check-prefix=RUN-COLD
// RUN: normjit run --op rms_norm --x %t/x.npy --gamma %t/g.npy --out %t/y.npy --verbose --cache %t/c.toml 2>&1 | FileCheck %s --check-prefix=RUN-WARM

// COLD: spec {{.*}}rms_norm
// COLD-NOT: cached
// FILE: cold_cache = true
// COLD: caches flushed before every sample (a cold-cache entry)
// COLD-AGAIN: cached {{.*}} (cold cache)
// COLD-JSON: "cached":true,"cold_cache":true
// WARM-NOT: cached
// WARM: best
// SHOW: 2 entries
// SHOW-DAG: rows<=64 cold cache:
// SHOW-DAG: rows<=64: {{[0-9.]+}} GB/s
// MERGE: 2 entries
// ONE: 1
// RUN-COLD: config: {{.*}}(default
// RUN-WARM: config: {{.*}}(tuning cache)
