"""Triton 2.x's fused attention (triton/ops/flash_attention.py) as CUBINs.

Triton 2.x wheels ship the tutorial's kernels as triton.ops.flash_attention;
3.x dropped triton.ops. The module imports torch at its top and compiles
through a launcher stub that links libcuda, so neither is used here: its
@jit functions are read from the installed file (never copied into Loom),
and compiled stage by stage with the functions triton.compile chains
(ttir -> ttgir -> llir -> ptx -> cubin), with the target capability given,
so no driver is asked. The argument specialization is what a launch with
contiguous (batch, heads, seqlen, head_dim) tensors gets from triton's JIT:
pointers and integers divisible by 16 marked so, integers equal to 1 folded.
"""
import ast
import importlib.util
import pathlib
import re
import subprocess
import sys
import types


class Unavailable(Exception):
    pass


def ensure_torch_version_only():
    """triton 2.x asks torch only `torch.version.hip is None` (a CUDA build?)
    on the compile path (language/math.py, common/build.py); without torch
    in the bench venv that question is answered for a CUDA build."""
    try:
        import torch  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torch")
        stub.version = types.SimpleNamespace(hip=None)
        sys.modules["torch"] = stub


def load_kernels(triton, out_dir):
    path = pathlib.Path(triton.__file__).parent / "ops" / "flash_attention.py"
    if not path.is_file():
        raise Unavailable(f"triton {triton.__version__} has no {path}")
    tree = ast.parse(path.read_text())
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef)
            and any(ast.unparse(d) in ("jit", "triton.jit") for d in n.decorator_list)]
    if not keep:
        raise Unavailable(f"no @jit functions in {path}")
    header = "import triton\nimport triton.language as tl\nfrom triton import jit\n"
    module = ast.Module(body=ast.parse(header).body + keep, type_ignores=[])
    mod_path = pathlib.Path(out_dir) / "loom_triton2_flash_attention.py"
    mod_path.write_text(ast.unparse(module) + "\n")
    spec = importlib.util.spec_from_file_location("loom_triton2_flash_attention", mod_path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # triton resolves a callee's globals through it
    spec.loader.exec_module(mod)
    return mod, path


def launch_arguments(name, shape, elem):
    """Argument name -> (type, value) as _attention.forward/backward pass them."""
    b, h, s, d = shape
    strides = {"z": h * s * d, "h": s * d, "m": d, "k": 1, "n": d}
    args = {}
    for t in "qkvo":
        last = {"q": "k", "k": "k", "v": "n", "o": "n"}[t]
        row = {"q": "m", "k": "n", "v": "k", "o": "m"}[t]
        args[f"stride_{t}z"] = ("i32", strides["z"])
        args[f"stride_{t}h"] = ("i32", strides["h"])
        args[f"stride_{t}{row}"] = ("i32", d)
        args[f"stride_{t}{last}"] = ("i32", 1)
    args.update({"Z": ("i32", b), "H": ("i32", h), "N_CTX": ("i32", s),
                 "stride_dqa": ("i32", b * h * s * d), "sm_scale": ("fp32", None),
                 "L": ("*fp32", None), "D": ("*fp32", None), "DQ": ("*fp32", None)})
    for p in ("Q", "K", "V", "Out", "DO", "DK", "DV"):
        args[p] = ("*" + elem, None)
    return args


def specialize(fn, shape, elem, constexprs):
    args = launch_arguments(fn.__name__, shape, elem)
    sig, consts, div16, eq1 = {}, {}, set(), set()
    for i, name in enumerate(fn.arg_names):
        if i in fn.constexprs:
            if name not in constexprs:
                raise Unavailable(f"constexpr {name} of {fn.__name__} has no value here")
            consts[i] = constexprs[name]
            continue
        if name not in args:
            raise Unavailable(f"{fn.__name__}: argument {name} is not known to this helper")
        ty, value = args[name]
        sig[i] = ty
        if ty.startswith("*"):
            div16.add(i)  # torch allocations are 16-byte aligned
        elif value == 1:
            eq1.add(i)
            consts[i] = 1
        elif value is not None and value % 16 == 0:
            div16.add(i)
    return sig, consts, div16, eq1


def ptx_to_cubin(path_to_ptxas, ptx, cc, out_dir, stem):
    """The CUBIN and ptxas' report (registers, spill stores): triton's own
    ptx_to_cubin runs its bundled ptxas as `ptxas -lineinfo -v
    --gpu-name=sm_CC` and drops the report, so this runs the same ptxas the
    same way (the same bytes) and keeps it."""
    ptx_path = pathlib.Path(out_dir) / f"{stem}.ptx"
    ptx_path.write_text(ptx)
    cubin_path = ptx_path.with_suffix(".cubin")
    ptxas, _ = path_to_ptxas()
    arch = f"sm_{cc}a" if cc == 90 else f"sm_{cc}"
    res = subprocess.run([ptxas, "-lineinfo", "-v", f"--gpu-name={arch}", str(ptx_path),
                          "-o", str(cubin_path)], capture_output=True, text=True)
    log = res.stdout + res.stderr
    regs = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    if res.returncode != 0 or not regs or not spills:
        raise RuntimeError(f"{ptxas} failed or gave no report: {log[-300:]}")
    return cubin_path, int(regs.group(1)), int(spills.group(1))


def compile_kernel(fn, cc, shape, elem, constexprs, warps, stages, out_dir, stem):
    from triton.common.backend import path_to_ptxas
    from triton.compiler import compiler as tc
    from triton.compiler.code_generator import ast_to_ttir
    sig, consts, div16, eq1 = specialize(fn, shape, elem, constexprs)
    config = tc.instance_descriptor(divisible_by_16=div16, equal_to_1=eq1)
    ttir = tc.optimize_ttir(ast_to_ttir(fn, sig, config, consts, debug=False, arch=cc), cc)
    ttgir = tc.optimize_ttgir(tc.ttir_to_ttgir(ttir, warps), stages, cc)
    llir = tc.ttgir_to_llir(ttgir, {}, cc)
    shared = tc.get_shared_memory_size(ttgir)  # set by the llir translation
    ptx = tc.llir_to_ptx(llir, cc)
    name = tc.get_kernel_name(ptx, pattern="// .globl")
    cubin, regs, spills = ptx_to_cubin(path_to_ptxas, ptx, cc, out_dir, stem)
    return cubin, name, regs, spills, shared


def jobs(pass_, head_dim, causal):
    """(kernel, constexprs, warps, stages, block_m, block_n, why) per row."""
    if pass_ == "fwd":
        common = {"BLOCK_DMODEL": head_dim, "IS_CAUSAL": causal}
        # _attention.forward launches BLOCK_M=128, BLOCK_N=64, num_stages=4,
        # num_warps = 4 if head_dim <= 64 else 8; the two 4-warp rows are
        # issue #15's Triton configs (64x32 and 128x64).
        own = 4 if head_dim <= 64 else 8
        rows = [(128, 64, own, "its_launch")]
        rows += [(bm, bn, 4, "") for bm, bn in ((64, 32), (128, 64)) if (bm, bn, 4) != rows[0][:3]]
        return [("_fwd_kernel", dict(common, BLOCK_M=bm, BLOCK_N=bn), w, 4, bm, bn, why)
                for bm, bn, w, why in rows]
    # _attention.backward: BLOCK_M = BLOCK_N = 128, 8 warps, 1 stage, one CTA
    # per (batch, head) looping over the key blocks (SEQUENCE_PARALLEL=False).
    consts = {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_DMODEL": head_dim,
              "SEQUENCE_PARALLEL": False, "CAUSAL": causal}
    return [("_bwd_kernel", consts, 8, 1, 128, 128, "its_launch")]


def run(triton, a, cc, out_dir, emit):
    ensure_torch_version_only()
    mod, path = load_kernels(triton, out_dir)
    emit(f"source triton {triton.__version__} {path.parent.name}/{path.name}")
    elem = "bf16" if a.dtype == "bf16" else "fp16"
    shape = (a.batch, a.heads, a.seqlen, a.head_dim)
    rows = jobs(a.pass_, a.head_dim, a.causal)
    for name, consts, warps, stages, bm, bn, why in rows[:1] if a.first_only else rows:
        fn = getattr(mod, name, None)
        if fn is None:
            raise Unavailable(f"{path} has no kernel {name}")
        stem = f"{name}_{bm}x{bn}_w{warps}_s{stages}"
        try:
            cubin, kname, regs, spills, shared = compile_kernel(
                fn, cc, shape, elem, consts, warps, stages, out_dir, stem)
        except Unavailable:
            raise
        except Exception as err:  # a config the compiler rejects is reported, not fatal
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            emit(f"note Triton {a.pass_} {bm}x{bn}, {warps} warps: not compiled: "
                 f"{type(err).__name__}: " + " | ".join(lines[-2:]))
            continue
        label = f"Triton_{a.pass_}_{bm}x{bn},_{warps}_warps" + (f"_({why})" if why else "")
        # `bwd_per_head`: the launch `loom profile` models for this _bwd_kernel.
        model_pass = "fwd" if a.pass_ == "fwd" else "bwd_per_head"
        emit(f"kernel label={label} name={kname} pass={model_pass} warps={warps} block_m={bm} "
             f"block_n={bn} regs={regs} spills={spills} shared={shared} stages={stages} "
             f"cubin={cubin}")
