#!/usr/bin/env python3
"""Loom's ring attention against the reference JAX RingAttention, on the CPU.

    python3 bench/ring_vs_jax.py [--quick] [--seqlens 2048,8192]
        [--head-dims 64,128] [--ranks 4,8] [--runs 3] [--threads 2]

Runs itself in a bench-only venv (default /work/.bench-venv-jax, --venv),
pip-installing jax[cpu]==0.4.31 (else the closest jax 0.4.x), numpy and
`ringattention` (Hao Liu's RingAttention) there when missing; none is a Loom
dependency. Without the reference it says why and exits 1 (no substitute).

What: causal f32 attention, batch 1, 8 heads, the sequence split over P
ranks (the issue #21 table: S 2048/8192, D 64/128, P 4/8; --quick: S 2048,
2 runs). Every config gets fresh random inputs Q, K, V, dO of shape
(1, S, 8, D), saved as .npy, and both sides run on those same files:
  JAX   a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=P
        (P host devices; XLA's CPU defaults otherwise: one Eigen intra-op
        pool over the allowed cores, shared by the devices), a 1-D mesh
        ("sp") over them, ringattention(q, k, v, None, None, None, "sp",
        float32_logits=True, blockwise_kwargs: causal_block_size=1,
        query/key_chunk_size=min(--chunk, S/P), nothing_saveable) inside
        shard_map with the sequence sharded: its contiguous layout.
        Forward: jit(ring); forward+backward: jit of jax.vjp(ring) applied
        to dO. Each is compiled ahead of time (lower().compile(): "compile"),
        called once untimed (warm-up), then timed --runs times with
        block_until_ready; the median is reported.
  Loom  `loom ring --world P --variant causal --layout L --cpu-threads T
        --repeat R` (in-process ranks; forward, then again with --grad-out
        for forward+backward), run from a copy of the binary and its
        shared libraries taken at start (the build dir may be rebuilt
        meanwhile). "compile" is the first call's JIT and cache time from
        the overall "timing:" line (the slowest rank), the warm time that
        line's "run median". Loom's default layout is zigzag (--layout).
Both are pinned to the first --threads cores (sched_setaffinity) when that
is fewer than the machine has.

How to read a row: ms are warm medians; ratio = JAX ms / Loom ms, so > 1
means Loom is faster. "compile" columns are seconds, JAX's AOT compile
beside Loom's first-call compile, for forward and forward+backward.
check: O, dQ, dK, dV of both against a float64 numpy attention on sampled
query/key rows (random, plus the first and last row of every shard), as
max |x - ref| / max |ref| ("loom/jax" per tensor). PASS needs Loom's
errors < 1e-4 and every output of both sides finite (outputs are poisoned
with NaN before each run, so a side that writes nothing fails). Any FAIL
(or a side that crashed) makes the exit status 1.
"""

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

try:  # the first start runs outside the venv, without numpy
    import numpy as np
except ImportError:
    np = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The pinned reference, then the closest: ringattention needs jax >= 0.4.29.
INSTALLS = (["jax[cpu]==0.4.31", "numpy", "ringattention"],
            ["jax[cpu]>=0.4.29,<0.5", "numpy", "ringattention"])
NAMES = ("Q", "K", "V", "dO")
OUTS = ("O", "dQ", "dK", "dV")


def ensure_venv(venv):
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    py = os.path.join(venv, "bin", "python")
    probe = [py, "-c", "import numpy, jax, ringattention"]
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    if subprocess.run(probe, capture_output=True).returncode != 0:
        for pkgs in INSTALLS:
            if subprocess.run([py, "-m", "pip", "install"] + pkgs).returncode == 0:
                break
        r = subprocess.run(probe, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("ring_vs_jax: the reference JAX RingAttention is not importable in %s "
                     "(pip install %s failed?): %s\nno reference, no bench." %
                     (venv, " ".join(INSTALLS[0]), (r.stderr.strip().splitlines() or ["?"])[-1]))
    os.execv(py, [py] + sys.argv)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--loom", default=os.path.join(ROOT, "build", "bin", "loom"))
    p.add_argument("--venv", default="/work/.bench-venv-jax")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seqlens", help="comma-separated (default 2048,8192)")
    p.add_argument("--head-dims", help="comma-separated (default 64,128)")
    p.add_argument("--ranks", help="comma-separated (default 4,8)")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--runs", type=int, help="timed runs per side (default 3; --quick 2)")
    p.add_argument("--threads", type=int, default=2, help="cores for both sides")
    p.add_argument("--layout", default="zigzag", help="Loom's token layout")
    p.add_argument("--chunk", type=int, default=512, help="JAX query/key chunk size")
    p.add_argument("--samples", type=int, default=48, help="random rows checked")
    p.add_argument("--jax-worker", help=argparse.SUPPRESS)  # internal: a config dir
    a = p.parse_args()
    a.runs = a.runs or (2 if a.quick else 3)
    if min(a.threads, a.runs, a.heads, a.chunk) < 1:
        p.error("--threads, --runs, --heads and --chunk must be at least 1")
    return a


def ints(text, default):
    return [int(x) for x in text.split(",")] if text else default


def jax_worker(args):
    # One config in its own process: XLA_FLAGS (P host devices) must be set
    # before jax is imported, and differs per P.
    import jax
    import jax.numpy as jnp
    from jax.experimental.shard_map import shard_map
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from ringattention import ringattention

    d = args.jax_worker
    cfg = json.load(open(os.path.join(d, "config.json")))
    if len(jax.devices()) != cfg["P"]:
        sys.exit("jax sees %d devices, wanted %d" % (len(jax.devices()), cfg["P"]))
    mesh = Mesh(np.array(jax.devices()), ("sp",))
    chunk = min(args.chunk, cfg["S"] // cfg["P"])
    bk = dict(causal_block_size=1, query_chunk_size=chunk, key_chunk_size=chunk,
              deterministic=True, dropout_rng=None, attn_pdrop=0.0, dtype=jnp.float32,
              policy=jax.checkpoint_policies.nothing_saveable, precision=None,
              prevent_cse=True)
    spec = PartitionSpec(None, "sp", None, None)

    def local(q, k, v):  # attn_bias, segment_ids, cache_idx: none
        return ringattention(q, k, v, None, None, None, "sp", True, bk)

    ring = shard_map(local, mesh=mesh, in_specs=(spec,) * 3, out_specs=spec, check_rep=False)

    def fwd_bwd(q, k, v, g):
        o, vjp = jax.vjp(ring, q, k, v)
        return (o,) + tuple(vjp(g))

    sharding = NamedSharding(mesh, spec)
    x = [jax.device_put(np.load(os.path.join(d, n + ".npy")), sharding) for n in NAMES]
    from importlib.metadata import version
    res = {"versions": ", ".join("%s %s" % (p, version(p)) for p in
                                 ("jax", "jaxlib", "ringattention", "flax", "numpy"))}
    for name, fn, inputs in (("fwd", ring, x[:3]), ("fb", fwd_bwd, x)):
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(*inputs).compile()
        t1 = time.perf_counter()
        out = jax.block_until_ready(compiled(*inputs))
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            jax.block_until_ready(compiled(*inputs))
            times.append(1000 * (time.perf_counter() - t))
        res[name] = {"compile": 1000 * (t1 - t0), "run": statistics.median(times)}
        for n, a in zip(OUTS, [out] if name == "fwd" else [None] + list(out[1:])):
            if a is not None:  # O from the forward, the gradients from fwd+bwd
                np.save(os.path.join(d, "jax_" + n + ".npy"), np.asarray(a))
    print("RESULT " + json.dumps(res))


def reference(arr, qrows, krows):
    # float64 causal attention: O and dQ on query rows `qrows`, dK and dV on
    # key rows `krows`. dK/dV need every row's LSE and delta = rowsum(dO*O),
    # so O and LSE are computed for all rows, blockwise (keys up to the
    # block's last row only).
    q, k, v, do = (arr[n][0].astype(np.float64) for n in NAMES)
    S, H, D = q.shape
    sc = 1.0 / np.sqrt(D)
    o, lse = np.zeros((S, H, D)), np.zeros((S, H))
    blk = 512
    for h in range(H):
        for b in range(0, S, blk):
            e = min(b + blk, S)
            s = q[b:e, h] @ k[:e, h].T * sc
            s = np.where(np.arange(e)[None, :] <= np.arange(b, e)[:, None], s, -np.inf)
            m = s.max(axis=1, keepdims=True)
            p = np.exp(s - m)
            l = p.sum(axis=1, keepdims=True)
            o[b:e, h] = (p / l) @ v[:e, h]
            lse[b:e, h] = (m + np.log(l))[:, 0]
    delta = np.einsum("shd,shd->sh", do, o)
    qr, kr = np.asarray(qrows), np.asarray(krows)
    dq, dk, dv = np.zeros((len(qr), H, D)), np.zeros((len(kr), H, D)), np.zeros((len(kr), H, D))
    for h in range(H):
        s = q[qr, h] @ k[:, h].T * sc
        p = np.where(np.arange(S)[None, :] <= qr[:, None], np.exp(s - lse[qr, h][:, None]), 0)
        ds = p * (do[qr, h] @ v[:, h].T - delta[qr, h][:, None])
        dq[:, h] = ds @ k[:, h] * sc
        s = q[:, h] @ k[kr, h].T * sc  # (S, |kr|)
        p = np.where(np.arange(S)[:, None] >= kr[None, :], np.exp(s - lse[:, h][:, None]), 0)
        dv[:, h] = p.T @ do[:, h]
        ds = p * (do[:, h] @ v[kr, h].T - delta[:, h][:, None])
        dk[:, h] = ds.T @ q[:, h] * sc
    return {"O": o[qr], "dQ": dq, "dK": dk, "dV": dv}


def rel_err(got, want):
    if not np.all(np.isfinite(got)):
        return float("nan")
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def copy_loom(path, tmp):
    # A private copy of loom and its libLoom*.so (LD_LIBRARY_PATH beats the
    # binary's RUNPATH), so a rebuild of the build dir during the bench
    # cannot change what runs.
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    loom = shutil.copy2(path, bindir)
    libdir = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(path))), "lib")
    for f in os.listdir(libdir) if os.path.isdir(libdir) else []:
        if f.startswith("libLoom") and ".so" in f:
            shutil.copy2(os.path.join(libdir, f), bindir)
    env = dict(os.environ, LD_LIBRARY_PATH=bindir + ":" + os.environ.get("LD_LIBRARY_PATH", ""),
               LOOM_CACHE_DIR=os.path.join(tmp, "cache"), JAX_PLATFORMS="cpu")
    return loom, env


TIMING = re.compile(r"^timing: compile ([0-9.]+) ms, run median ([0-9.]+) ms over [0-9]+ runs$",
                    re.M)


def run_loom(args, loom, env, pin, d, P, backward):
    p = {n: os.path.join(d, n + ".npy") for n in NAMES + OUTS}
    cmd = [loom, "ring", "--world", str(P), "--layout", args.layout, "--variant", "causal",
           "--q", p["Q"], "--k", p["K"], "--v", p["V"], "--out", p["O"], "--quiet",
           "--repeat", str(args.runs), "--cpu-threads", str(args.threads)]
    if backward:
        cmd += ["--grad-out", p["dO"], "--dq", p["dQ"], "--dk", p["dK"], "--dv", p["dV"]]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=pin)
    m = TIMING.search(r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError("loom failed (rc %d): %s\n%s" % (
            r.returncode, " ".join(cmd), (r.stdout + r.stderr)[-2000:]))
    return {"compile": float(m.group(1)), "run": float(m.group(2))}


def run_jax(args, env, pin, d, P):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=%d" % P
    cmd = [sys.executable, os.path.abspath(__file__), "--jax-worker", d,
           "--runs", str(args.runs), "--chunk", str(args.chunk)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(env, XLA_FLAGS=flags),
                       preexec_fn=pin)
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        raise RuntimeError("jax worker failed (rc %d):\n%s" % (
            r.returncode, (r.stdout + r.stderr)[-2000:]))
    return json.loads(line[-1][len("RESULT "):])


def check(arr, got, jax_got, S, P, rng, samples):
    # Rows checked: random ones plus each shard's first and last.
    edges = {r * S // P + x for r in range(P) for x in (0, S // P - 1)}
    qrows, krows = (sorted(set(rng.integers(0, S, samples).tolist()) | edges) for _ in range(2))
    want = reference(arr, qrows, krows)
    ok, errs = True, []
    for n in OUTS:
        rows = qrows if n in ("O", "dQ") else krows
        le, je = rel_err(got[n][0][rows], want[n]), rel_err(jax_got[n][0][rows], want[n])
        ok &= le < 1e-4 and je == je  # a NaN error (non-finite output) fails
        errs.append("%s %.1e/%.1e" % (n, le, je))
    return ok, ("PASS " if ok else "FAIL ") + ", ".join(errs)


def main():
    args = parse_args()
    if args.jax_worker:
        return jax_worker(args)
    ensure_venv(args.venv)

    tmp = tempfile.mkdtemp(prefix="loom-ring-vs-jax-")
    loom, env = copy_loom(args.loom, tmp)
    cpus = sorted(os.sched_getaffinity(0))
    pin = (lambda: os.sched_setaffinity(0, cpus[:args.threads])) if args.threads < len(cpus) \
        else None
    load = lambda d, prefix: {n: np.load(os.path.join(d, prefix + n + ".npy")) for n in OUTS}
    print("machine: %s, %d of %d cores; loom %s (ring, %s layout, --cpu-threads %d); JAX "
          "RingAttention (contiguous, chunk %d, XLA CPU defaults); %d warm runs each" % (
              cpu_name(), min(args.threads, len(cpus)), len(cpus), args.loom, args.layout,
              args.threads, args.chunk, args.runs))
    print("%5s %4s %2s | %9s %9s %5s | %9s %9s %5s | %-23s | %s" % (
        "S", "D", "P", "jax fwd", "loom fwd", "ratio", "jax f+b", "loom f+b", "ratio",
        "compile s jax|loom f,fb", "check (err loom/jax)"))
    failed, versions = False, None
    for S, D, P in itertools.product(ints(args.seqlens, [2048] if args.quick else [2048, 8192]),
                                     ints(args.head_dims, [64, 128]), ints(args.ranks, [4, 8])):
        d = os.path.join(tmp, "S%d_D%d_P%d" % (S, D, P))
        os.makedirs(d)
        shape = (1, S, args.heads, D)
        rng = np.random.default_rng(S * 131 + D * 7 + P)
        arr = {n: rng.standard_normal(shape).astype(np.float32) for n in NAMES}
        for n in NAMES:
            np.save(os.path.join(d, n + ".npy"), arr[n])
        json.dump({"S": S, "D": D, "P": P}, open(os.path.join(d, "config.json"), "w"))
        # NaN in every output file first: a side that writes nothing fails.
        nan = np.full(shape, np.nan, np.float32)
        for prefix, n in itertools.product(("", "jax_"), OUTS):
            np.save(os.path.join(d, prefix + n + ".npy"), nan)
        try:
            if S % P or (S // P) % min(args.chunk, S // P):
                raise RuntimeError("S/P = %g is not a multiple of JAX's chunk %d" % (
                    S / P, args.chunk))
            jx = run_jax(args, env, pin, d, P)
            lf = run_loom(args, loom, env, pin, d, P, False)
            lo = np.load(os.path.join(d, "O.npy"))  # O from the forward-only run
            np.save(os.path.join(d, "O.npy"), nan)
            lb = run_loom(args, loom, env, pin, d, P, True)
        except RuntimeError as e:
            failed = True
            print("%5d %4d %2d | FAIL: %s" % (S, D, P, e), flush=True)
            continue
        ok, text = check(arr, dict(load(d, ""), O=lo), load(d, "jax_"), S, P, rng, args.samples)
        failed |= not ok
        comp = "%.2f,%.2f|%.2f,%.2f" % (jx["fwd"]["compile"] / 1e3, jx["fb"]["compile"] / 1e3,
                                        lf["compile"] / 1e3, lb["compile"] / 1e3)
        print("%5d %4d %2d | %9.1f %9.1f %5.2f | %9.1f %9.1f %5.2f | %-23s | %s" % (
            S, D, P, jx["fwd"]["run"], lf["run"], jx["fwd"]["run"] / lf["run"],
            jx["fb"]["run"], lb["run"], jx["fb"]["run"] / lb["run"], comp, text), flush=True)
        versions = jx["versions"]
        shutil.rmtree(d, ignore_errors=True)
    if versions:
        print("versions: %s; compile: JAX lower()+compile(), Loom's first-call JIT "
              "(slowest rank)" % versions)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def cpu_name():
    try:
        m = re.search(r"^model name\s*:\s*(.*)$", open("/proc/cpuinfo").read(), re.M)
        return m.group(1) if m else "unknown CPU"
    except OSError:
        return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
