#!/usr/bin/env python3
"""Loom's CPU backend against PyTorch's fused CPU SDPA, in one interleaved run.

    python3 bench/cpu_vs_torch.py [--quick] [--threads T] [--dtypes f32,bf16]

Runs itself in a bench-only virtual environment (default /work/.bench-venv,
or --venv DIR), creating it and pip-installing torch and numpy there when
missing; torch is never a build dependency of Loom.

For every shape (batch 1; heads 1 and 8; head dim 64 and 128; causal and
not; seqlen 1K, 4K, 16K; --quick: seqlen 1K and 4K, heads 8) and dtype it
alternates rounds of torch.nn.functional.scaled_dot_product_attention (with
torch.set_num_threads(T)) and `loom attention --repeat R --cpu-threads T` on
the same .npy inputs, and prints the median GFLOP/s of each and the
Loom/torch ratio. Forward: one SDPA call. Backward: the median of
(forward + backward) minus the median forward, for both (Loom's --repeat
run with --grad-out is a forward and a backward). FLOPs: forward 4 B H S^2 D
(half with causal), backward 2.5 x the forward.

Both outputs are checked against float64 on sampled query rows (all rows
and the gradients at seqlen <= 1K): f32 max relative error < 1e-4; bf16
Loom's error <= 2 x torch's + 1e-3 (the same-precision naive error is
torch's). A failing check prints FAIL in its row and the script exits 1.

--isa avx2 runs both sides on AVX2 code on an AVX-512 machine (LOOM_CPU_TARGET=x86-64-v3,
ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2); the header says what each side ran.

--flex also times FlexAttention (torch.compile, score_mod softcap(30),
S 4096, H 8, D 64, f32) cold and warm beside Loom's compile and run of the
same variant.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def ensure_venv(venv):
    py = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    probe = subprocess.run([py, "-c", "import torch, numpy"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "torch", "numpy"])
    os.execv(py, [py] + sys.argv)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--loom", default=os.path.join(ROOT, "build", "bin", "loom"))
    p.add_argument("--venv", default="/work/.bench-venv")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtypes", default="f32,bf16")
    p.add_argument("--passes", default="fwd,bwd")
    p.add_argument("--seqlens", help="comma-separated, overrides the set")
    p.add_argument("--heads", help="comma-separated, overrides the set")
    p.add_argument("--head-dims", help="comma-separated, overrides the set")
    p.add_argument("--causal", choices=("both", "yes", "no"), default="both")
    p.add_argument("--runs", type=int, default=3, help="timed runs per round")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    p.add_argument("--flex", action="store_true")
    p.add_argument("--isa", choices=("host", "avx2", "avx512"), default="host",
                   help="instruction set of both sides: Loom's LOOM_CPU_TARGET (x86-64-v3 for "
                        "avx2, x86-64-v4 for avx512) and torch's ATEN_CPU_CAPABILITY")
    args = p.parse_args()
    if args.threads < 1 or args.runs < 1 or args.rounds < 1:
        p.error("--threads, --runs and --rounds must be at least 1")
    return args


def ints(text):
    return [int(x) for x in text.split(",")]


def main():
    args = parse_args()
    ensure_venv(args.venv)
    if args.isa != "host":
        # Read by torch at import and by every loom subprocess: an AVX-512
        # machine then also measures what an AVX2-only one would run.
        os.environ["ATEN_CPU_CAPABILITY"] = args.isa
        if args.isa == "avx2":  # torch's bf16 matmuls go to oneDNN, which dispatches alone
            os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        os.environ["LOOM_CPU_TARGET"] = {"avx2": "x86-64-v3", "avx512": "x86-64-v4"}[args.isa]
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    tdtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
    seqlens = ints(args.seqlens) if args.seqlens else ([1024, 4096] if args.quick
                                                       else [1024, 4096, 16384])
    heads = ints(args.heads) if args.heads else ([8] if args.quick else [1, 8])
    dims = ints(args.head_dims) if args.head_dims else [64, 128]
    causals = {"both": [False, True], "yes": [True], "no": [False]}[args.causal]
    passes = args.passes.split(",")
    tmp = tempfile.mkdtemp(prefix="loom-vs-torch-")
    timing_re = re.compile(r"^timing: compile ([0-9.]+) ms, run median ([0-9.]+) ms over "
                           r"([0-9]+) runs$", re.M)
    failed = False

    def loom(paths, dtype, causal, backward, runs, variant=None):
        cmd = [args.loom, "attention", "--q", paths["Q"], "--k", paths["K"], "--v", paths["V"],
               "--out", paths["O"], "--lse", paths["LSE"], "--backend", "cpu", "--dtype", dtype,
               "--repeat", str(runs), "--cpu-threads", str(args.threads)]
        v = variant or ("causal" if causal else None)
        if v:
            cmd += ["--variant", v]
        if backward:
            cmd += ["--grad-out", paths["dO"], "--dq", paths["dQ"], "--dk", paths["dK"],
                    "--dv", paths["dV"]]
        r = subprocess.run(cmd, capture_output=True, text=True)
        m = timing_re.search(r.stderr)
        if r.returncode != 0 or not m:
            sys.exit("loom failed: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
        return float(m.group(1)), float(m.group(2))

    def torch_times(q, k, v, do, causal, backward, runs):
        out = []
        for _ in range(runs):
            if backward:
                qq, kk, vv = (t.detach().requires_grad_() for t in (q, k, v))
                t0 = time.perf_counter()
                o = F.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
                o.backward(do)
            else:
                t0 = time.perf_counter()
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            out.append(1000 * (time.perf_counter() - t0))
        return out

    def reference_rows(q, k, v, causal, rows):
        # float64 attention for the query rows `rows` of (S, H, D) arrays.
        S, H, D = q.shape
        out = np.zeros((len(rows), H, D))
        for h in range(H):
            s = q[rows, h, :] @ k[:, h, :].T / np.sqrt(D)
            if causal:
                s = np.where(np.arange(S)[None, :] <= np.asarray(rows)[:, None], s, -np.inf)
            p = np.exp(s - s.max(axis=1, keepdims=True))
            out[:, h, :] = (p / p.sum(axis=1, keepdims=True)) @ v[:, h, :]
        return out

    def reference_grads(q, k, v, do, causal):
        S, H, D = q.shape
        dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
        for h in range(H):
            s = q[:, h, :] @ k[:, h, :].T / np.sqrt(D)
            if causal:
                s = np.where(np.tril(np.ones((S, S), bool)), s, -np.inf)
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            dv[:, h, :] = p.T @ do[:, h, :]
            dp = do[:, h, :] @ v[:, h, :].T
            ds = p * (dp - (dp * p).sum(axis=1, keepdims=True)) / np.sqrt(D)
            dq[:, h, :] = ds @ k[:, h, :]
            dk[:, h, :] = ds.T @ q[:, h, :]
        return dq, dk, dv

    def rel_err(got, want):
        return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))

    print("machine: %s, %d threads; torch %s (%s), loom CPU target %s" % (
        cpu_name(), args.threads, torch.__version__, torch.backends.cpu.get_cpu_capability(),
        os.environ.get("LOOM_CPU_TARGET", "host")))
    print("%-5s %-4s %2s %4s %-6s %6s | %9s %9s %6s | %s" % (
        "dtype", "pass", "H", "D", "causal", "S", "torch GF/s", "loom GF/s", "ratio", "check"))
    ratios = {}
    for dtype in args.dtypes.split(","):
        for S in seqlens:
            for H in heads:
                for D in dims:
                    for causal in causals:
                        rng = np.random.default_rng(S * 131 + H * 17 + D + causal)
                        arr = {n: rng.uniform(-1, 1, (1, S, H, D)).astype(np.float32)
                               for n in ("Q", "K", "V", "dO")}
                        # Inputs rounded to the compute dtype once, so both
                        # libraries and the reference see the same values.
                        for n in arr:
                            arr[n] = torch.from_numpy(arr[n]).to(tdtype[dtype]).float().numpy()
                        paths = {n: os.path.join(tmp, n + ".npy")
                                 for n in ("Q", "K", "V", "dO", "O", "LSE", "dQ", "dK", "dV")}
                        for n in arr:
                            np.save(paths[n], arr[n])
                        tq, tk, tv, tdo = (torch.from_numpy(arr[n]).transpose(1, 2)
                                           .to(tdtype[dtype]).contiguous()
                                           for n in ("Q", "K", "V", "dO"))
                        flops = 4.0 * H * S * S * D * (0.5 if causal else 1.0)
                        runs = max(1, args.runs if S <= 4096 else min(args.runs, 2))
                        # Warm-up: torch's first calls allocate and pick kernels.
                        torch_times(tq, tk, tv, tdo, causal, "bwd" in passes, 1)
                        tt = {"fwd": [], "both": []}
                        lt = {"fwd": [], "both": []}
                        need_bwd = "bwd" in passes
                        for _ in range(args.rounds):
                            tt["fwd"] += torch_times(tq, tk, tv, tdo, causal, False, runs)
                            lt["fwd"].append(loom(paths, dtype, causal, False, runs)[1])
                            if need_bwd:
                                tt["both"] += torch_times(tq, tk, tv, tdo, causal, True, runs)
                                lt["both"].append(loom(paths, dtype, causal, True, runs)[1])
                        # Checks: Loom's files from its last (backward) run.
                        rows = (list(range(S)) if S <= 1024 else
                                sorted(set(rng.integers(0, S, 48).tolist()) | {0, S - 1}))
                        want = reference_rows(arr["Q"][0].astype(np.float64),
                                              arr["K"][0].astype(np.float64),
                                              arr["V"][0].astype(np.float64), causal, rows)
                        with torch.no_grad():
                            to = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
                        to = to.float().transpose(1, 2).numpy()[0][rows]
                        lo = np.load(paths["O"])[0][rows]
                        errs = [("O", rel_err(lo, want), rel_err(to, want))]
                        if need_bwd and S <= 1024:
                            g = reference_grads(*(arr[n][0].astype(np.float64)
                                                  for n in ("Q", "K", "V", "dO")), causal)
                            qq, kk, vv = (t.detach().requires_grad_() for t in (tq, tk, tv))
                            F.scaled_dot_product_attention(qq, kk, vv, is_causal=causal).backward(tdo)
                            for name, want_g, tg in zip(("dQ", "dK", "dV"), g, (qq, kk, vv)):
                                errs.append((name, rel_err(np.load(paths[name])[0], want_g),
                                             rel_err(tg.grad.float().transpose(1, 2).numpy()[0],
                                                     want_g)))
                        ok = all((le < 1e-4) if dtype == "f32" else (le <= 2 * te + 1e-3)
                                 for _, le, te in errs)
                        failed |= not ok
                        check = "%s (loom %s)" % ("PASS" if ok else "FAIL", ", ".join(
                            "%s %.1e/%.1e" % (n, le, te) for n, le, te in errs))
                        med = statistics.median
                        cells = [("fwd", flops, med(tt["fwd"]), med(lt["fwd"]))]
                        if need_bwd:
                            cells.append(("bwd", 2.5 * flops,
                                          max(med(tt["both"]) - med(tt["fwd"]), 1e-3),
                                          max(med(lt["both"]) - med(lt["fwd"]), 1e-3)))
                        for pas, fl, tms, lms in cells:
                            if pas not in passes:
                                continue
                            tg, lg = fl / tms / 1e6, fl / lms / 1e6
                            ratios.setdefault((dtype, pas, S), []).append(lg / tg)
                            print("%-5s %-4s %2d %4d %-6s %6d | %9.1f %9.1f %6.2f | %s" % (
                                dtype, pas, H, D, "yes" if causal else "no", S, tg, lg, lg / tg,
                                check), flush=True)
    print("\nLoom/torch GFLOP/s ratio, min-max over heads, head dims and causal:")
    for (dtype, pas, S), r in sorted(ratios.items()):
        print("  %-5s %-4s S=%-6d %.2f-%.2f" % (dtype, pas, S, min(r), max(r)))
    if args.flex:
        flex(args, tmp, loom, np, torch)
    return 1 if failed else 0


def flex(args, tmp, loom, np, torch):
    from torch.nn.attention.flex_attention import flex_attention

    S, H, D, cap = 4096, 8, 64, 30.0
    rng = np.random.default_rng(7)
    arr = {n: rng.uniform(-1, 1, (1, S, H, D)).astype(np.float32) for n in ("Q", "K", "V", "dO")}
    paths = {n: os.path.join(tmp, "flex" + n + ".npy")
             for n in ("Q", "K", "V", "dO", "O", "LSE", "dQ", "dK", "dV")}
    for n in arr:
        np.save(paths[n], arr[n])
    q, k, v = (torch.from_numpy(arr[n]).transpose(1, 2).contiguous() for n in ("Q", "K", "V"))

    def softcap(score, b, h, qi, kv):
        return cap * torch.tanh(score / cap)

    compiled = torch.compile(flex_attention)
    t0 = time.perf_counter()
    compiled(q, k, v, score_mod=softcap)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        compiled(q, k, v, score_mod=softcap)
        warm.append(time.perf_counter() - t0)
    lc, lr = loom(paths, "f32", False, False, args.runs, variant="softcap(%g)" % cap)
    print("\nFlexAttention softcap(30), S=%d H=%d D=%d f32 forward:" % (S, H, D))
    print("  torch.compile(flex_attention): first call %.2f s, later calls median %.3f s"
          % (cold, statistics.median(warm)))
    print("  loom: compile %.2f s, run median %.3f s" % (lc / 1000, lr / 1000))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
