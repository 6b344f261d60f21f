# -*- Python -*-
# lit configuration for normjit's FileCheck tests.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "normjit"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.normjit_obj_root, "tests", "lit")
config.excludes = ["lit.cfg.py", "lit.site.cfg.py"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.normjit_tools_dir, config.llvm_tools_dir]
tools = [
    ToolSubst("normjit-opt", unresolved="fatal"),
    # Not inside a path or a longer name (normjit-opt, normjit-run.mlir).
    ToolSubst("normjit", pre="/-.", post="-.", unresolved="fatal"),
]
llvm_config.add_tool_substitutions(tools, tool_dirs)
config.substitutions.append(("%examples", config.normjit_examples_dir))

# Tests never read or write the user's tuning cache.
config.environment["NORMJIT_CACHE_DIR"] = os.path.join(
    config.test_exec_root, "tuning-cache")
