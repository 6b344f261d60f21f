// RUN: rm -rf %t && mkdir -p %t
// RUN: normjit tune --sweep %S/Inputs/sweep-small.toml --shard 0/2 --cache %t/shard-0.toml --no-progress 2>%t/progress-0 | FileCheck %s --check-prefix=SHARD0
// RUN: FileCheck %s --check-prefix=LINES < %t/progress-0
// RUN: normjit tune --sweep %S/Inputs/sweep-small.toml --shard 1/2 --cache %t/shard-1.toml --no-progress 2>/dev/null | FileCheck %s --check-prefix=SHARD1
// RUN: cp %t/shard-0.toml %t/interrupted.toml
// RUN: normjit tune --sweep %S/Inputs/sweep-small.toml --cache %t/interrupted.toml --no-progress 2>/dev/null | FileCheck %s --check-prefix=CONTINUE
// RUN: normjit cache merge --cache %t/all.toml %t/shard-0.toml %t/shard-1.toml | FileCheck %s --check-prefix=MERGE
// RUN: normjit tune --sweep %S/Inputs/sweep-small.toml --cache %t/all.toml --no-progress --report %t/report 2>/dev/null | FileCheck %s --check-prefix=RESUME
// RUN: FileCheck %s --check-prefix=REPORT < %t/report/report.md
// RUN: FileCheck %s --check-prefix=CSV < %t/report/report.csv
// RUN: FileCheck %s --check-prefix=SVG < %t/report/report.svg
// Rows that share a cache entry (one row bucket, or a spec listed twice)
// are tuned once and said so, not counted as already in the cache.
// RUN: printf '[[sweep]]\nops = ["rms_norm"]\ncols = [64]\nrows = [1000, 1024, 8]\n[[sweep]]\nops = ["rms_norm"]\ncols = [64]\nrows = [8]\n' > %t/dup.toml
// RUN: normjit tune --sweep %t/dup.toml --cache %t/dup-cache.toml --budget 0.2 --candidates 2 --no-progress 2>%t/dup-notes | FileCheck %s --check-prefix=DUP
// RUN: FileCheck %s --check-prefix=DUP-NOTES < %t/dup-notes
// DUP: tuned 2, already in the cache 0 (shard 0/1: 2 of 2 specs; the whole sweep has 2 rows sharing an earlier row's entry)
// DUP-NOTES: note: rms_norm rows=1024 cols=64 {{.*}} shares the cache entry of rms_norm rows=1000 cols=64 {{.*}} (row bucket rows<=1024): tuned once, as the first
// DUP-NOTES: note: rms_norm rows=8 cols=64 {{.*}} is in the sweep more than once: tuned once
// Mixed precision and stored statistics: bf16 rows with f32 gamma and
// beta, LayerNorm storing mean and rstd, RMSNorm rstd; the report says so.
// RUN: printf '[[sweep]]\nops = ["layer_norm", "rms_norm"]\ncols = [384]\nrows = [8]\ndtypes = ["bf16"]\nparam_dtype = "f32"\nstore_stats = true\nbudget = 0.2\n' > %t/mixed.toml
// RUN: normjit tune --sweep %t/mixed.toml --cache %t/mixed-cache.toml --candidates 2 --no-progress --report %t/mixed-report 2>%t/mixed-lines | FileCheck %s --check-prefix=MIXED
// RUN: FileCheck %s --check-prefix=MIXED-LINES < %t/mixed-lines
// RUN: FileCheck %s --check-prefix=MIXED-REPORT < %t/mixed-report/report.md
// RUN: FileCheck %s --check-prefix=MIXED-CSV < %t/mixed-report/report.csv
// MIXED: tuned 2, already in the cache 0
// MIXED-LINES: layer_norm rows=8 cols=384 x=bf16 y=bf16 gamma=f32 beta=f32 mean=f32 rstd=f32
// MIXED-LINES: rms_norm rows=8 cols=384 x=bf16 y=bf16 gamma=f32 rstd=f32
// MIXED-REPORT: | layer_norm | 8 | 384 | bf16 (f32 gamma/beta) + stats | no |
// MIXED-REPORT: | rms_norm | 8 | 384 | bf16 (f32 gamma/beta) + stats | no |
// Both take tiles of 8 rows by the default for their row count, timed in
// the final beside the spec's default.
// MIXED-REPORT: Where the default for the row count {{.*}} is another config, 2 shapes tuned in this run {{.*}}: the tuned config {{[0-9.]+}}x over it, it {{[0-9.]+}}x over the spec's default
// MIXED-CSV: layer_norm,8,8,384,bf16,0,{{.*}},f32,1
// MIXED-CSV: rms_norm,8,8,384,bf16,0,{{.*}},f32,1
// RUN: printf '[[sweep]]\nops = ["rms_norm"]\ncols = [64]\nrows = [8]\nparam_dtype = "f64"\n' > %t/bad-param.toml
// RUN: not normjit tune --sweep %t/bad-param.toml --cache %t/bad.toml 2>&1 | FileCheck %s --check-prefix=BAD-PARAM
// BAD-PARAM: normjit: error: {{.*}}bad-param.toml:5{{.*}}'param_dtype' must be "f32", "f16" or "bf16"
// A sweep file from a pipe is read (and checked) as one on disk.
// RUN: cat %t/bad-param.toml | not normjit tune --sweep /dev/stdin --cache %t/bad.toml 2>&1 | FileCheck %s --check-prefix=PIPE-PARAM
// PIPE-PARAM: normjit: error: {{.*}}/dev/stdin:5{{.*}}'param_dtype' must be "f32", "f16" or "bf16"

// A sweep split into two shards; a run stopped after half the specs (the
// first shard's cache) continues where it stopped; the shards merged, and a
// resumed run that finds everything tuned already and writes the report.

// SHARD0: tuned 2, already in the cache 0 (shard 0/2: 2 of 4 specs)
// LINES: [1/2] rms_norm rows=8 cols=64 x=f32
// LINES: [2/2] rms_norm rows=8 cols=64 x=bf16
// CONTINUE: tuned 2, already in the cache 2 (shard 0/1: 4 of 4 specs)
// SHARD1: tuned 2, already in the cache 0 (shard 1/2: 2 of 4 specs)
// MERGE: merged 2 file(s) into {{.*}}all.toml: 4 entries
// RESUME: tuned 0, already in the cache 4 (shard 0/1: 4 of 4 specs)
// RESUME: report    {{.*}}report/report.{md,csv,svg}
// REPORT: | op | rows | cols | dtype | residual | tuned GB/s | default GB/s | speedup | memcpy GB/s
// REPORT-COUNT-4: | rms_norm | 8 |
// REPORT: Geometric-mean speedup of the tuned over the default config: {{[0-9.]+}}x over 4 shapes.
// The rows measured are not kept in the cache: empty for cached entries.
// CSV: op,rows,measured_rows,cols,dtype,residual,tuned_gbps,default_gbps,speedup,memcpy_gbps,fusion,fusion_margin,from_cache,config,param_dtype,stats,rows_default_gbps,y_dtype,residual_dtype,gamma,beta,eps
// CSV-COUNT-4: rms_norm,8,,
// SVG: <svg xmlns="http://www.w3.org/2000/svg"
// SVG: memcpy ceiling
// SVG: </svg>

// A short file of long lists is refused before its specs are made (3000
// columns by 3000 row counts by 12 would be 108 million).
// RUN: python3 -c "c=list(range(1,3001)); open('%t/huge.toml','w').write('[sweep]\nops=[\"layer_norm\",\"rms_norm\"]\ndtypes=[\"f32\",\"f16\",\"bf16\"]\nresidual=[false,true]\ncols=%%s\nrows=%%s\n' %% (c, c))"
// RUN: not normjit tune --sweep %t/huge.toml --cache %t/huge-cache.toml 2>&1 | FileCheck %s --check-prefix=HUGE
// HUGE: normjit: error: malformed sweep file {{.*}}huge.toml:1: the sweep names more than 1000000 specs (this table alone); split it into several sweep files
// A report directory with '%' in its name (and a trailing '/'); specs that
// differ only in gamma and epsilon read apart in the report.
// RUN: printf '[[sweep]]\nops = ["rms_norm"]\ncols = [64]\nrows = [8]\n[[sweep]]\nops = ["rms_norm"]\ncols = [64]\nrows = [8]\ngamma = false\neps = 1e-3\n' > %t/apart.toml
// RUN: normjit tune --sweep %t/apart.toml --cache %t/apart-cache.toml --budget 0.2 --candidates 2 --no-progress --report '%t/100%%/' 2>/dev/null | FileCheck %s --check-prefix=PERCENT
// RUN: FileCheck %s --check-prefix=APART < '%t/100%%/report.md'
// RUN: FileCheck %s --check-prefix=APART-CSV < '%t/100%%/report.csv'
// PERCENT: report    {{.*}}/100%/report.{md,csv,svg}
// APART: | rms_norm | 8 | 64 | f32 | no |
// APART: | rms_norm | 8 | 64 | f32, no gamma, eps 0.001 | no |
// APART-CSV: rms_norm,8,8,64,f32,0,{{.*}},f32,,1,0,1e-06
// APART-CSV: rms_norm,8,8,64,f32,0,{{.*}},f32,,0,0,0.001
// A shard that gets no spec says so; a cache merged with itself, or a file
// named twice, is said once.
// RUN: normjit tune --sweep %t/apart.toml --shard 2/3 --cache %t/apart-cache.toml --no-progress 2>&1 | FileCheck %s --check-prefix=EMPTY-SHARD
// EMPTY-SHARD: normjit: warning: shard 2/3 has no specs: the sweep has 2 specs
// RUN: normjit cache merge --cache %t/apart-cache.toml %t/apart-cache.toml %t/shard-0.toml %t/shard-0.toml 2>&1 | FileCheck %s --check-prefix=SELF-MERGE
// SELF-MERGE: note: '{{.*}}apart-cache.toml' is the cache merged into; skipped
// SELF-MERGE: note: '{{.*}}shard-0.toml' is the same file as '{{.*}}shard-0.toml'; merged once
// SELF-MERGE: merged 1 file(s) into
