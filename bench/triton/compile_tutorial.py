#!/usr/bin/env python3
"""Compiles Triton's fused-attention tutorial kernel to CUBINs for `loom profile`.

Bench-time only: Triton is never a Loom dependency, and its code is never
copied into this repository. Triton 2.x: the tutorial's kernels as the wheel
ships them, triton/ops/flash_attention.py (triton2_ops.py). Triton 3.x: the
tutorial (python/tutorials/06-fused-attention.py
of the Triton release installed) is read from $LOOM_TRITON_TUTORIAL, else
<repo>/build/triton/06-fused-attention.py, else anywhere inside the installed
triton package. Its @triton.jit functions are extracted (the module itself
needs torch and a GPU at import) into --out and compiled with
triton.compile(..., target=GPUTarget("cuda", CC, 32)), no GPU needed.

Prints for tools/loom/TritonTutorial.cpp, exit status 0 either way:
  source TEXT                  (which triton, which file)
  note TEXT                    (a config that did not compile, and why)
  kernel label=L name=N pass=P warps=W block_m=M block_n=N regs=R spills=S shared=B cubin=PATH
or one line `unavailable REASON`.
"""
import argparse
import ast
import importlib.util
import os
import pathlib
import sys


def unavailable(reason):
    print("unavailable " + reason)
    sys.exit(0)


def find_tutorial():
    env = os.environ.get("LOOM_TRITON_TUTORIAL")
    if env:
        if not os.path.isfile(env):
            unavailable(f"$LOOM_TRITON_TUTORIAL '{env}' is not a file")
        return env
    repo = pathlib.Path(__file__).resolve().parents[2]
    local = repo / "build" / "triton" / "06-fused-attention.py"
    if local.is_file():
        return str(local)
    import triton
    for path in pathlib.Path(triton.__file__).parent.rglob("*fused*attention*.py"):
        return str(path)
    unavailable(
        f"triton {triton.__version__} does not ship its fused-attention tutorial; put "
        f"python/tutorials/06-fused-attention.py of that release at {local} or set "
        "$LOOM_TRITON_TUTORIAL")


def extract_jit_functions(source, out_dir):
    """Writes a module with the tutorial's @triton.jit functions only."""
    tree = ast.parse(source)
    keep = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        names = [ast.unparse(d) for d in node.decorator_list]
        if any(n in ("triton.jit", "jit") or n.startswith("triton.jit(") for n in names):
            node.decorator_list = [d for d in node.decorator_list
                                   if ast.unparse(d).startswith(("triton.jit", "jit"))]
            keep.append(node)
    if not keep:
        unavailable("no @triton.jit functions in the tutorial")
    module = ast.Module(body=ast.parse(
        "import triton\nimport triton.language as tl\n").body + keep, type_ignores=[])
    path = pathlib.Path(out_dir) / "loom_triton_tutorial_kernels.py"
    path.write_text(ast.unparse(module) + "\n")
    spec = importlib.util.spec_from_file_location("loom_triton_tutorial_kernels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


POINTERS_F32 = {"M", "D", "Delta"}


def signature_of(fn, elem, constexprs):
    sig, consts = {}, {}
    for i, name in enumerate(fn.arg_names):
        if fn.params[i].is_constexpr:
            if name not in constexprs:
                raise KeyError(f"constexpr {name} of {fn.__name__} has no value here")
            sig[name] = "constexpr"
            consts[name] = constexprs[name]
        elif name in POINTERS_F32:
            sig[name] = "*fp32"
        elif name == "sm_scale":
            sig[name] = "fp32"
        elif name.startswith("stride") or name in ("Z", "H", "N_CTX"):
            sig[name] = "i32"
        elif name.startswith("desc"):
            raise KeyError(f"{fn.__name__} takes tensor descriptors ({name})")
        else:
            sig[name] = "*" + elem
    return sig, consts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pass", dest="pass_", choices=["fwd", "bwd"], default="fwd")
    p.add_argument("--arch", default="sm_80")
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--dtype", choices=["f16", "bf16"], default="bf16")
    p.add_argument("--causal", action="store_true")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--seqlen", type=int, default=4096)
    p.add_argument("--first-only", action="store_true", help="the first config only")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    try:
        import triton
    except Exception as e:  # ImportError, or a broken install
        unavailable(f"cannot import triton with {sys.executable}: {e}")
    cc = int("".join(ch for ch in a.arch[3:] if ch.isdigit()))
    if int(triton.__version__.split(".")[0]) < 3:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
        sys.dont_write_bytecode = True  # no __pycache__ in the source tree
        import triton2_ops
        try:
            triton2_ops.run(triton, a, cc, a.out, lambda line: print(line, flush=True))
        except triton2_ops.Unavailable as e:
            unavailable(str(e))
        return
    from triton.backends.compiler import GPUTarget
    mod = extract_jit_functions(pathlib.Path(find_tutorial()).read_text(), a.out)
    elem = "bf16" if a.dtype == "bf16" else "fp16"
    common = {"HEAD_DIM": a.head_dim, "CAUSAL": a.causal, "STAGE": 3 if a.causal else 1,
              "FP8_OUTPUT": False, "warp_specialize": False, "IS_HOPPER": cc == 90}
    if a.pass_ == "fwd":
        # The tutorial's first autotune config, and 128x64 on 4 warps.
        jobs = [("_attn_fwd", dict(common, BLOCK_M=64, BLOCK_N=32), 4, 3, 64, 32),
                ("_attn_fwd", dict(common, BLOCK_M=128, BLOCK_N=64), 4, 3, 128, 64)]
    else:
        # The tutorial's backward launch: 4 warps, 5 stages, 32/128/128/32.
        jobs = [("_attn_bwd", dict(common, BLOCK_M1=32, BLOCK_N1=128, BLOCK_M2=128,
                                   BLOCK_N2=32, BLK_SLICE_FACTOR=2), 4, 5, 128, 32)]
    for name, consts, warps, stages, bm, bn in (jobs[:1] if a.first_only else jobs):
        fn = getattr(mod, name, None)
        if fn is None:
            unavailable(f"the tutorial has no kernel {name}")
        for e in (elem, "fp16"):
            try:
                sig, cst = signature_of(fn, e, consts)
                src = triton.compiler.ASTSource(fn, sig, cst)
                k = triton.compile(src, target=GPUTarget("cuda", cc, 32),
                                   options={"num_warps": warps, "num_stages": stages})
                break
            except KeyError as err:
                unavailable(str(err))
            except Exception as err:  # e.g. the tutorial casts P to fp16 only
                if e == "fp16":
                    unavailable(f"triton.compile({name}) failed: " + " | ".join(str(err).splitlines()[-3:]))
        cubin = pathlib.Path(a.out) / f"{name}_{bm}x{bn}_w{warps}.cubin"
        cubin.write_bytes(k.asm["cubin"])
        md = k.metadata
        label = f"Triton_{a.pass_}_{bm}x{bn},_{warps}_warps" + ("" if e == elem else "_(fp16)")
        print(f"kernel label={label} name={md.name} pass={a.pass_} warps={warps} block_m={bm} "
              f"block_n={bn} regs={k.n_regs} spills={k.n_spills} shared={md.shared} "
              f"cubin={cubin}")


if __name__ == "__main__":
    main()
