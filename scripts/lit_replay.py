#!/usr/bin/env python3
#===- lit_replay.py - a lit test's RUN lines where lit and FileCheck are not -===#
"""Runs the RUN lines of one lit test on a machine without lit or FileCheck
(the GPU machine: the bundle, python3 and bash only), records what each
FileCheck would have read, and checks the records later with the real
FileCheck here.

  record  TEST --bin DIR --out DIR [--set NAME=VALUE ...]
          Runs TEST's RUN lines in order from the repository root, as lit's
          shell would (bash, pipefail), with DIR first in PATH (the bundle's
          bin/). Each FileCheck of a line becomes a recorder of its stdin and
          arguments; `count N` and `not` work as LLVM's tools do. Stops at the
          first line that fails. Writes OUT/status.json and OUT/fc-*.{in,args}.
  check   TEST --out DIR [--filecheck PATH]
          Replays every recorded FileCheck with the real one; fails when a RUN
          line failed there or a FileCheck fails here.

Substitutions: %{name} from the test's DEFINE lines, %s (TEST as given: keep
it relative to the repository root so both machines spell it alike), %S, %t
(OUT/tmp), %python, and any --set NAME=VALUE (e.g. fake_cuda_driver=PATH for
%fake_cuda_driver). NORMJIT_CACHE_DIR is OUT/cache, as the lit suite keeps
tests off the user's cache.
"""

import argparse
import json
import os
import re
import subprocess
import sys

# Executables, not shell functions, so that `env X=1 not normjit ...` works.
TOOLS = {
    "__fc": 'n=$1; shift; printf "%s\\n" "$@" >"$__REC/fc-$n.args"\n'
            'exec cat >"$__REC/fc-$n.in"\n',
    "count": 'n=$(wc -l); [ "$n" -eq "$1" ] && exit 0\n'
             'echo "count: expected $1 lines, read $n" >&2; exit 1\n',
    # A crash stays a failure, as does a program not found (LLVM's not).
    "not": '"$@"; rc=$?\n[ $rc -ge 126 ] && exit $rc\n[ $rc -ne 0 ]\n',
}


def parse(test):
    runs, defines, cur = [], {}, None
    with open(test, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*//\s*DEFINE:\s*%\{([^}]+)\}\s*=\s*(.*?)\s*$", line)
            if m:
                defines[m.group(1)] = m.group(2)
                continue
            m = re.match(r"\s*//\s*RUN:\s?(.*?)\s*$", line)
            if not m:
                continue
            text = m.group(1)
            cont = text.endswith("\\")
            text = text[:-1] if cont else text
            cur = text if cur is None else cur + " " + text
            if not cont:
                runs.append(cur)
                cur = None
    return runs, defines


def substitute(text, defines, values):
    for _ in range(8):  # definitions may use one another
        new = re.sub(r"%\{([^}]+)\}",
                     lambda m: defines.get(m.group(1), m.group(0)), text)
        if new == text:
            break
        text = new
    # One pass, longest names first (%t is not taken from %test_root), and
    # %% for a literal %, as lit's own substitutions.
    keys = sorted(values, key=len, reverse=True)
    pattern = "%%|" + "|".join(re.escape("%" + k) for k in keys)
    return re.sub(pattern, lambda m: "%" if m.group(0) == "%%"
                  else values[m.group(0)[1:]], text)


def record(opts):
    runs, defines = parse(opts.test)
    out = os.path.abspath(opts.out)
    tmp = os.path.join(out, "tmp")
    os.makedirs(out, exist_ok=True)
    # Nothing of an earlier run may pass for this one's.
    for name in os.listdir(out):
        if name == "status.json" or re.match(r"fc-\d+\.(in|args)$", name):
            os.remove(os.path.join(out, name))
    values = {"s": opts.test, "S": os.path.dirname(opts.test) or ".",
              "t": tmp, "python": sys.executable}
    for item in opts.set or []:
        name, _, value = item.partition("=")
        values[name] = value
    tools = os.path.join(out, "tools")
    os.makedirs(tools, exist_ok=True)
    for name, body in TOOLS.items():
        path = os.path.join(tools, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write("#!/usr/bin/env bash\n" + body)
        os.chmod(path, 0o755)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([tools, os.path.abspath(opts.bin),
                                   env.get("PATH", "")])
    env["NORMJIT_CACHE_DIR"] = os.path.join(out, "cache")
    env["__REC"] = out
    status, seq = {"test": opts.test, "lines": []}, [0]

    def recorder(_m):
        seq[0] += 1
        return "__fc %d" % seq[0]

    def save():
        status["complete"] = (len(status["lines"]) == len(runs) and
                              all(e["rc"] == 0 for e in status["lines"]))
        with open(os.path.join(out, "status.json"), "w",
                  encoding="utf-8") as f:
            json.dump(status, f, indent=1)

    def text(data):
        return (data or b"").decode(errors="replace")[-2000:]

    save()  # a run killed from outside still leaves what it did
    for i, raw in enumerate(runs):
        line = substitute(raw, defines, values)
        line = re.sub(r"(?<![\w/.-])FileCheck(?![\w.-])", recorder, line)
        print("RUN %d: %s" % (i + 1, raw), flush=True)
        try:
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", line],
                                  env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=opts.timeout)
            rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, stdout = 124, e.stdout
            stderr = (e.stderr or b"") + (
                b"\n(timed out after %g s)\n" % opts.timeout)
        entry = {"run": raw, "command": line, "rc": rc,
                 "stdout": text(stdout), "stderr": text(stderr)}
        status["lines"].append(entry)
        save()
        print("  rc=%d" % rc, flush=True)
        if rc != 0:
            print(entry["stderr"], end="", flush=True)
            break
    return 0 if status["complete"] else 1


def check(opts):
    with open(os.path.join(opts.out, "status.json"), encoding="utf-8") as f:
        status = json.load(f)
    failed = 0
    for i, e in enumerate(status["lines"]):
        if e["rc"] != 0:
            print("FAIL RUN %d (rc %d there): %s\n%s" % (i + 1, e["rc"], e["run"],
                                                       e["stderr"]))
            failed += 1
        for n in re.findall(r"__fc (\d+)", e["command"]):
            base = os.path.join(opts.out, "fc-" + n)
            if not os.path.exists(base + ".args"):
                print("FAIL RUN %d: FileCheck %s never ran" % (i + 1, n))
                failed += 1
                continue
            with open(base + ".args", encoding="utf-8") as f:
                args = [a for a in f.read().split("\n") if a]
            with open(base + ".in", "rb") as stdin:
                proc = subprocess.run([opts.filecheck] + args, stdin=stdin,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
            if proc.returncode:
                print("FAIL RUN %d: FileCheck %s\n%s" % (
                    i + 1, " ".join(args), proc.stdout.decode(errors="replace")))
                failed += 1
    runs, _ = parse(opts.test)
    if len(status["lines"]) < len(runs):
        print("FAIL: %d of %d RUN lines ran there" % (len(status["lines"]),
                                                     len(runs)))
        failed += 1
    print("%s: %s (%d RUN lines)" % (opts.test, "FAILED" if failed else "PASSED",
                                     len(runs)))
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("record")
    r.add_argument("test")
    r.add_argument("--bin", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--set", action="append", metavar="NAME=VALUE")
    r.add_argument("--timeout", type=float, default=300)
    c = sub.add_parser("check")
    c.add_argument("test")
    c.add_argument("--out", required=True)
    c.add_argument("--filecheck", default="/usr/lib/llvm-22/bin/FileCheck")
    opts = p.parse_args()
    return record(opts) if opts.mode == "record" else check(opts)


if __name__ == "__main__":
    sys.exit(main())
