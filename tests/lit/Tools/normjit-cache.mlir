// RUN: rm -rf %t && mkdir -p %t
// RUN: normjit cache path --cache %t/c.toml | FileCheck %s --check-prefix=PATH
// RUN: env NORMJIT_CACHE_DIR=%t/dir normjit cache path | FileCheck %s --check-prefix=ENV
// RUN: normjit cache show --cache %t/c.toml | FileCheck %s --check-prefix=EMPTY
// RUN: printf 'schema = 1\n[[entry]]\nspec = "x"\nbogus = 1\n' > %t/bad.toml
// RUN: normjit cache show --cache %t/bad.toml 2>&1 | FileCheck %s --check-prefix=CORRUPT
// RUN: ls %t | FileCheck %s --check-prefix=ASIDE
// RUN: normjit tune --op layer_norm --rows 4 --cols 32 --budget 0.2 --candidates 2 --cache %t/a.toml > /dev/null
// RUN: cp %t/a.toml %t/b.toml
// A hand-made entry for 1024 threads (all cores or more: never looked up)
// is shown marked.
// RUN: sed 's/^row_bucket = \(.*\)/row_bucket = \1\nthreads = 1024/' %t/a.toml > %t/many.toml
// RUN: normjit cache show --cache %t/many.toml | FileCheck %s --check-prefix=MANY
// MANY: on 1024 threads: {{.*}} [never looked up: 1024 threads are all of this machine's cores or more; its entries for all cores have no thread count]
// RUN: sed -i 's/^gbps = .*/gbps = 99999.0/' %t/b.toml
// RUN: normjit cache merge --cache %t/merged.toml %t/a.toml %t/b.toml | FileCheck %s --check-prefix=MERGE
// RUN: normjit cache clear --cache %t/merged.toml | FileCheck %s --check-prefix=CLEAR
// RUN: normjit cache clear --cache %t/merged.toml | FileCheck %s --check-prefix=CLEARED
// RUN: not normjit cache frobnicate 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: not normjit cache merge --cache %t/x.toml 2>&1 | FileCheck %s --check-prefix=NOFILES
// RUN: not normjit cache merge --cache %t/x.toml %t/bad.toml.missing 2>&1 | FileCheck %s --check-prefix=MISSINGINPUT
// RUN: not normjit cache show --cache "" 2>&1 | FileCheck %s --check-prefix=EMPTYPATH
// RUN: not normjit cache path --cache= 2>&1 | FileCheck %s --check-prefix=EMPTYPATH
// EMPTYPATH: normjit: error: option '--cache' needs a non-empty FILE
// RUN: mkdir -p %t/dir-cache
// RUN: not normjit cache clear --cache %t/dir-cache 2>&1 | FileCheck %s --check-prefix=DIRCLEAR
// RUN: ls %t | FileCheck %s --check-prefix=NOLOCK
// DIRCLEAR: normjit: error: cannot clear tuning cache '{{.*}}dir-cache': it is a directory
// clear removes a tuning cache, truncated or hand-written too, and nothing
// that is not one (a mistyped --cache).
// RUN: printf '\x93NUMPY data' > %t/weights.npy
// RUN: not normjit cache clear --cache %t/weights.npy 2>&1 | FileCheck %s --check-prefix=NOTCACHE
// RUN: ls %t | FileCheck %s --check-prefix=KEPT
// NOTCACHE: normjit: error: not clearing '{{.*}}weights.npy': it does not look like a normjit tuning cache
// KEPT: weights.npy
// Nor do show, run or tune move or write over it: show warns and leaves
// it, tune refuses before it tunes.
// RUN: normjit cache show --cache %t/weights.npy 2>&1 | FileCheck %s --check-prefix=SHOW-FOREIGN
// SHOW-FOREIGN: normjit: warning: '{{.*}}weights.npy' does not look like a normjit tuning cache ({{.*}}); not used, and left as it is
// RUN: not normjit tune --op rms_norm --rows 4 --cols 64 --budget 0.1 --cache %t/weights.npy 2>&1 | FileCheck %s --check-prefix=TUNE-FOREIGN
// TUNE-FOREIGN: normjit: error: not writing tuning cache '{{.*}}weights.npy': the file there does not look like one
// RUN: ls %t | grep weights | FileCheck %s --check-prefix=STILL-KEPT
// STILL-KEPT: weights.npy
// STILL-KEPT-NOT: corrupt
// A FIFO is no file to remove.
// RUN: mkfifo %t/fifo.toml
// RUN: not normjit cache clear --cache %t/fifo.toml 2>&1 | FileCheck %s --check-prefix=FIFOCLEAR
// RUN: test -p %t/fifo.toml
// RUN: rm %t/fifo.toml
// FIFOCLEAR: normjit: error: not clearing '{{.*}}fifo.toml': not a regular file
// RUN: printf '# norm''jit tuning cache: the best' > %t/truncated.toml
// RUN: printf '\n  schema= 1\n' > %t/handmade.toml
// RUN: : > %t/empty.toml
// RUN: normjit cache clear --cache %t/truncated.toml | FileCheck %s --check-prefix=CLEAR-ANY
// RUN: normjit cache clear --cache %t/handmade.toml | FileCheck %s --check-prefix=CLEAR-ANY
// RUN: normjit cache clear --cache %t/empty.toml | FileCheck %s --check-prefix=CLEAR-ANY
// RUN: ls %t | FileCheck %s --check-prefix=GONE
// CLEAR-ANY: cleared {{.*}}.toml
// GONE-NOT: {{^}}truncated.toml{{$}}
// GONE-NOT: {{^}}handmade.toml{{$}}
// GONE-NOT: {{^}}empty.toml{{$}}
// NOLOCK: dir-cache
// NOLOCK-NOT: dir-cache.lock
// The cache subcommands, a corrupt cache set aside with a warning, and a
// merge of two files with the same key keeping the faster entry.

// PATH: {{.*}}c.toml
// ENV: {{.*}}dir/tuning.toml
// EMPTY: 0 entries
// CORRUPT: warning: {{.*}}bad.toml
// CORRUPT: 0 entries
// ASIDE: bad.toml.corrupt-
// MERGE: kept 99999.0 GB/s from {{.*}}b.toml over {{[0-9.]+}} GB/s from {{.*}}a.toml
// MERGE: merged 2 file(s) into {{.*}}merged.toml: 1 entries
// CLEAR: cleared {{.*}}merged.toml
// CLEARED: no tuning cache to clear at {{.*}}merged.toml
// UNKNOWN: normjit: error: unknown cache command 'frobnicate'
// NOFILES: normjit: error: 'normjit cache merge' needs the files to merge
// MISSINGINPUT: normjit: error:
