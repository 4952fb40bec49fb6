"""Float64 reference for `loom attention --bias/--sinks/--dbias/--dsinks`.

gen DIR --seed S: writes DIR/bias.npy (heads, seqlen_q, seqlen_k) and
DIR/sinks.npy (heads,) for DIR/Q.npy and DIR/K.npy (from make_npy.py gen).
check DIR ...: compares loom's O, LSE, dbias and dsinks with attention whose
scores get the bias before the causal mask and whose softmax rows get the
sinks; the gradients of loss = sum(O * dO) are central finite differences
of that reference, independent of any analytic formula.
"""
import argparse
import math
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_npy import read_npy, write_npy  # noqa: E402


def load(path):
    shape, values = read_npy(path, loom_output=False)
    return shape, values


def gen(args):
    rng = random.Random(args.seed)
    (B, Sq, H, D), _ = load(os.path.join(args.dir, "Q.npy"))
    (_, Sk, _, _), _ = load(os.path.join(args.dir, "K.npy"))
    write_npy(os.path.join(args.dir, "bias.npy"), (H, Sq, Sk),
              [rng.uniform(-1, 1) for _ in range(H * Sq * Sk)])
    write_npy(os.path.join(args.dir, "sinks.npy"), (H,), [rng.uniform(-1, 1.5) for _ in range(H)])


def forward(q, k, v, bias, sinks, dims, causal):
    B, Sq, Sk, H, Hkv, D = dims
    scale = 1.0 / math.sqrt(D)
    out, lse = [0.0] * (B * Sq * H * D), [0.0] * (B * H * Sq)
    for b in range(B):
        for h in range(H):
            hk = h // (H // Hkv)
            for i in range(Sq):
                s = []
                for j in range(Sk):
                    if causal and j > i + Sk - Sq:
                        s.append(-math.inf)
                        continue
                    dot = sum(q[((b * Sq + i) * H + h) * D + c] * k[((b * Sk + j) * Hkv + hk) * D + c]
                              for c in range(D))
                    s.append(dot * scale + bias[(h * Sq + i) * Sk + j])
                m = max(s + [sinks[h]])
                den = sum(math.exp(x - m) for x in s) + math.exp(sinks[h] - m)
                lse[(b * H + h) * Sq + i] = m + math.log(den)
                for c in range(D):
                    out[((b * Sq + i) * H + h) * D + c] = sum(
                        math.exp(s[j] - m) / den * v[((b * Sk + j) * Hkv + hk) * D + c]
                        for j in range(Sk))
    return out, lse


def check(args):
    d = args.dir
    (B, Sq, H, D), q = load(os.path.join(d, "Q.npy"))
    (_, Sk, Hkv, _), k = load(os.path.join(d, "K.npy"))
    _, v = load(os.path.join(d, "V.npy"))
    _, do = load(os.path.join(d, "dO.npy"))
    _, bias = load(os.path.join(d, "bias.npy"))
    _, sinks = load(os.path.join(d, "sinks.npy"))
    dims = (B, Sq, Sk, H, Hkv, D)
    out, lse = forward(q, k, v, bias, sinks, dims, args.causal)
    loss = lambda bb, ss: sum(o * g for o, g in zip(forward(q, k, v, bb, ss, dims, args.causal)[0], do))

    def fd(values, index, other_is_bias):
        eps = 1e-4
        plus, minus = list(values), list(values)
        plus[index] += eps
        minus[index] -= eps
        if other_is_bias:
            return (loss(plus, sinks) - loss(minus, sinks)) / (2 * eps)
        return (loss(bias, plus) - loss(bias, minus)) / (2 * eps)

    def err(got, want):
        return max((abs(a - b) if math.isfinite(a) else math.inf for a, b in zip(got, want)),
               default=0.0)  # an empty tensor (issue 19) matches

    report, ok = [], True
    for name, path, want in (("O", args.out, out), ("LSE", args.lse, lse)):
        e = err(load(path)[1], want)
        report.append("%s max abs err %.2e" % (name, e))
        ok = ok and e <= args.tol
    dbias = [fd(bias, i, True) for i in range(len(bias))]
    dsinks = [fd(sinks, i, False) for i in range(len(sinks))]
    for name, path, want in (("dbias", args.dbias, dbias), ("dsinks", args.dsinks, dsinks)):
        shape, got = load(path)
        e = err(got, want)
        report.append("%s %s max abs err %.2e" % (name, shape, e))
        ok = ok and e <= args.tol
    print(", ".join(report) + (": PASS" if ok else ": FAIL"))
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check")
    c.add_argument("dir")
    for name in ("out", "lse", "dbias", "dsinks"):
        c.add_argument("--" + name, required=True)
    c.add_argument("--causal", action="store_true")
    c.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    return gen(args) or 0 if args.cmd == "gen" else check(args)


if __name__ == "__main__":
    sys.exit(main())
