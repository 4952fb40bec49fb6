# -*- Python -*-
# lit configuration for the Loom FileCheck tests. Loaded from the
# lit.site.cfg.py that CMake generates in <build>/tests/lit, which sets
# loom_obj_root, loom_tools_dir and llvm_tools_dir.

import os
import sys

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

if not hasattr(config, "loom_obj_root"):
    lit_config.fatal(
        "lit.cfg.py is loaded from the generated lit.site.cfg.py: run "
        "`lit -sv <build>/tests/lit` (or `ctest -R lit` in the build tree)")

config.name = "Loom"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]

config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.loom_obj_root, "tests", "lit")

# Loom tools first, then the LLVM tools (FileCheck, not), so that a RUN line
# never picks up a stray binary from the system PATH.
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.loom_tools_dir, append_path=True)

llvm_config.use_default_substitutions()
llvm_config.add_tool_substitutions(
    [ToolSubst("loom-opt", unresolved="fatal"), ToolSubst("loom", unresolved="fatal")],
    [config.loom_tools_dir])
llvm_config.add_tool_substitutions(
    [ToolSubst("not", unresolved="fatal")], [config.llvm_tools_dir])

# The Python running lit, for test helpers (tests/lit/Tools/Inputs/make_npy.py).
config.substitutions.append(("%python", sys.executable))

# nvcc, when the CUDA toolkit is installed: `--emit cuda` must compile with it.
nvcc = "/usr/local/cuda/bin/nvcc"
if os.path.exists(nvcc):
    config.available_features.add("nvcc")
    config.substitutions.append(("%nvcc", nvcc))

# Kernel caches of the tests stay inside the build tree.
config.environment["LOOM_CACHE_DIR"] = os.path.join(config.loom_obj_root, "test-cache")

# mpirun (OpenMPI), for the MPI transport of `loom ring`: as root in
# containers, oversubscribed on small CI machines, shared memory/TCP only.
mpirun = "/usr/bin/mpirun"
if os.path.exists(mpirun):
    config.available_features.add("mpi")
    config.substitutions.append(
        ("%mpirun", mpirun + " --allow-run-as-root --oversubscribe --bind-to none "
         "--mca btl self,vader,tcp"))
    for key in ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"):
        config.environment[key] = "1"

# No GPU here (bench/gpu/validate.sh's own test of its no-GPU path).
import ctypes
try:
    ctypes.CDLL("libcuda.so.1")
except OSError:
    config.available_features.add("no-gpu")
config.substitutions.append(("%loom_obj_root", config.loom_obj_root))

# Bench-only comparisons of `loom profile` (tests/lit/Tools/profile-triton.test):
# a Python with triton ($LOOM_BENCH_PYTHON, else the venv of
# docs/gpu-model.md) and nvdisasm (as cuda/lib/Nvdisasm.cpp finds it). When
# either is missing the test is unsupported and this note says why.
import glob
import shutil
import subprocess


def _bench_python():
    if os.environ.get("LOOM_BENCH_PYTHON"):
        return os.environ["LOOM_BENCH_PYTHON"]
    venv = os.environ.get("LOOM_TRITON_VENV") or os.path.expanduser(
        "~/.local/share/loom/triton-venv")
    return os.path.join(venv, "bin", "python")


def _nvdisasm():
    if os.environ.get("LOOM_NVDISASM"):
        return os.environ["LOOM_NVDISASM"]
    venv = os.environ.get("LOOM_ANALYSIS_VENV") or os.path.expanduser(
        "~/.local/share/loom/analysis-venv")
    found = shutil.which("nvdisasm") or glob.glob(
        os.path.join(venv, "lib", "python*", "site-packages", "nvidia", "*", "bin", "nvdisasm"))
    return found if isinstance(found, str) else (found[0] if found else None)


_python = _bench_python()
_why = []
try:
    _version = subprocess.run([_python, "-c", "import triton; print(triton.__version__)"],
                              capture_output=True, text=True, timeout=60)
    if _version.returncode != 0:
        _why.append(f"{_python} cannot import triton")
except (OSError, subprocess.TimeoutExpired) as e:
    _why.append(f"no bench Python {_python} ({e.__class__.__name__})")
if not _nvdisasm():
    _why.append("no nvdisasm")
if _why:
    lit_config.note("profile-triton.test unsupported: " + "; ".join(_why) +
                    " (docs/gpu-model.md: the one-line install)")
else:
    config.available_features.add("triton")
    config.environment["LOOM_BENCH_PYTHON"] = _python
    for key in ("LOOM_NVDISASM", "LOOM_ANALYSIS_VENV", "HOME"):
        if os.environ.get(key):
            config.environment[key] = os.environ[key]
