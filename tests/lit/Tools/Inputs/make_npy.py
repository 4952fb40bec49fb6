#!/usr/bin/env python3
"""Inputs and a float64 reference for the `loom attention` lit tests.

Pure Python (no numpy): writes and reads .npy files with struct.

  make_npy.py gen DIR --q B,S,H,D --kv B,S,H,D [--seed N] [--version 1|2]
      DIR/Q.npy, K.npy, V.npy: float32, uniform in [-2, 2) (Q), [-1, 1) (K, V)
  make_npy.py check DIR --out O.npy [--lse LSE.npy] [--causal] [--scale S] --tol T
      compares loom's outputs with attention computed in float64 from DIR's
      inputs; prints the max abs errors and PASS, or FAIL and exits 1
  make_npy.py bad FILE KIND
      writes a malformed .npy file: f8, fortran, bigendian, truncated, magic,
      header, version3, rank3
  make_npy.py plant FILE INDEX VALUE
      sets element INDEX (flat, C order) of FILE to VALUE (nan, inf, -inf, ...)
  make_npy.py same-nonfinite A.npy B.npy --tol T
      A and B have NaN at the same elements (at least one), the same infs,
      and finite values within T of each other; prints SAME, or DIFFER and
      exits 1
"""
import argparse
import math
import random
import struct
import sys


def header_bytes(shape, descr="<f4", fortran=False, version=1):
    dims = "(%s)" % ("%d," % shape[0] if len(shape) == 1 else ", ".join(map(str, shape)))
    text = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, dims)
    prefix = 8 + (2 if version == 1 else 4)
    text += " " * ((64 - (prefix + len(text) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text.encode("latin1")


def write_npy(path, shape, values, version=1):
    with open(path, "wb") as f:
        f.write(header_bytes(shape, version=version))
        f.write(struct.pack("<%df" % len(values), *values))


def read_npy(path, loom_output=True):
    """Reads '<f4' C-order data; what loom writes must be version 1.0, 64-byte aligned."""
    data = open(path, "rb").read()
    assert data[:6] == b"\x93NUMPY", "%s: bad magic" % path
    version = data[6]
    assert version == 1 or not loom_output, "%s: version %d, expected 1.0" % (path, version)
    start = 10 if version == 1 else 12
    (hlen,) = struct.unpack("<H" if version == 1 else "<I", data[8:start])
    assert (start + hlen) % 64 == 0, "%s: data is not 64-byte aligned" % path
    header = eval(data[start:start + hlen].decode("latin1"))  # a Python dict literal
    assert header["descr"] == "<f4" and header["fortran_order"] is False, header
    shape = tuple(header["shape"])
    count = math.prod(shape)
    body = data[start + hlen:]
    assert len(body) == 4 * count, "%s: %d data bytes for shape %s" % (path, len(body), shape)
    return shape, list(struct.unpack("<%df" % count, body))


def parse_shape(text):
    return tuple(int(x) for x in text.split(","))


def gen(args):
    rng = random.Random(args.seed)
    for name, shape, bound in (("Q", args.q, 2.0), ("K", args.kv, 1.0), ("V", args.kv, 1.0),
                               ("dO", args.q, 1.0)):
        n = math.prod(shape)
        write_npy("%s/%s.npy" % (args.dir, name), shape,
                  [rng.uniform(-bound, bound) for _ in range(n)], args.version)


def parse_score_mods(text):
    """--score-mods alibi,softcap:C: score modifiers, applied in the order given."""
    mods = []
    for term in (text.split(",") if text else []):
        name, _, arg = term.partition(":")
        if name not in ("alibi", "softcap") or (name == "softcap") != bool(arg):
            raise SystemExit("bad --score-mods term %r" % term)
        mods.append((name, float(arg) if arg else None))
    return mods


def apply_score_mods(mods, x, h, heads, i, j, offset):
    """Loom's built-ins: ALiBi subtracts 2^(-8(h+1)/H) |i + offset - j|, softcap
    is C tanh(x / C); i and j are query and key rows, offset = Sk - Sq."""
    for name, arg in mods:
        if name == "alibi":
            x -= 2.0 ** (-8.0 * (h + 1) / heads) * abs(i + offset - j)
        else:
            x = arg * math.tanh(x / arg)
    return x


def reference(q, k, v, causal, scale, docs=None, mods=()):
    """O (q's shape) and LSE (batch, heads_q, seqlen_q) as flat float64 lists."""
    (qs, qd), (ks, kd), (_, vd) = q, k, v
    B, Sq, Hq, D = qs
    _, Sk, Hkv, _ = ks
    scale = scale if scale is not None else 1.0 / math.sqrt(D)
    group = Hq // Hkv

    def at(shape, data, b, s, h):
        base = ((b * shape[1] + s) * shape[2] + h) * shape[3]
        return data[base:base + shape[3]]

    out = [0.0] * (B * Sq * Hq * D)
    lse = [0.0] * (B * Hq * Sq)
    for b in range(B):
        for h in range(Hq):
            g = h // group
            for i in range(Sq):
                qi = at(qs, qd, b, i, h)
                last = i + Sk - Sq if causal else Sk - 1
                visible = [j for j in range(min(last + 1, Sk))
                           if docs is None or docs[j] == docs[i + Sk - Sq]]
                scores = [apply_score_mods(mods, scale * sum(x * y for x, y in
                                                             zip(qi, at(ks, kd, b, j, g))),
                                           h, Hq, i, j, Sk - Sq)
                          for j in visible]
                base = ((b * Sq + i) * Hq + h) * D
                if not scores:
                    lse[(b * Hq + h) * Sq + i] = -math.inf
                    continue
                m = max(scores)
                p = [math.exp(s - m) for s in scores]
                total = sum(p)
                lse[(b * Hq + h) * Sq + i] = m + math.log(total)
                for j, pj in zip(visible, p):
                    vj = at(ks, vd, b, j, g)
                    for d in range(D):
                        out[base + d] += pj / total * vj[d]
    return out, lse


def reference_grads(q, k, v, do, causal, scale):
    """dQ, dK, dV (flat float64 lists in q's, k's and v's layouts)."""
    (qs, qd), (ks, kd), (_, vd), (_, dod) = q, k, v, do
    B, Sq, Hq, D = qs
    _, Sk, Hkv, _ = ks
    scale = scale if scale is not None else 1.0 / math.sqrt(D)
    group = Hq // Hkv
    dq, dk, dv = [0.0] * len(qd), [0.0] * len(kd), [0.0] * len(vd)

    def idx(shape, b, s, h):
        return ((b * shape[1] + s) * shape[2] + h) * shape[3]

    for b in range(B):
        for h in range(Hq):
            g = h // group
            for i in range(Sq):
                qi, oi = idx(qs, b, i, h), idx(qs, b, i, h)
                last = i + Sk - Sq if causal else Sk - 1
                js = list(range(min(last + 1, Sk)))
                if not js:
                    continue
                s_ = [scale * sum(qd[qi + c] * kd[idx(ks, b, j, g) + c] for c in range(D))
                      for j in js]
                m = max(s_)
                e = [math.exp(x - m) for x in s_]
                total = sum(e)
                p = [x / total for x in e]
                o = [sum(p[t] * vd[idx(ks, b, j, g) + c] for t, j in enumerate(js))
                     for c in range(D)]
                delta = sum(dod[oi + c] * o[c] for c in range(D))
                for t, j in enumerate(js):
                    kj = idx(ks, b, j, g)
                    dp = sum(dod[oi + c] * vd[kj + c] for c in range(D))
                    ds = p[t] * (dp - delta)
                    for c in range(D):
                        dq[qi + c] += scale * ds * kd[kj + c]
                        dk[kj + c] += scale * ds * qd[qi + c]
                        dv[kj + c] += p[t] * dod[oi + c]
    return dq, dk, dv


def check_grads(args):
    q, k, v, do = (read_npy("%s/%s.npy" % (args.dir, n), loom_output=False)
                   for n in ("Q", "K", "V", "dO"))
    want = reference_grads(q, k, v, do, args.causal, args.scale)
    errors = []
    for name, path, w, shape in (("dQ", args.dq, want[0], q[0]), ("dK", args.dk, want[1], k[0]),
                                 ("dV", args.dv, want[2], v[0])):
        got_shape, got = read_npy(path)
        assert got_shape == shape, "%s shape %s, expected %s" % (name, got_shape, shape)
        errors.append((name, max_error(got, w)))
    ok = all(e <= args.tol for _, e in errors)
    print(" ".join("%s max abs err %.3g" % e for e in errors),
          "(tolerance %g):" % args.tol, "PASS" if ok else "FAIL")
    return 0 if ok else 1


def max_error(got, want):
    err = 0.0
    for g, w in zip(got, want):
        if math.isnan(g) or math.isnan(w):  # max() would skip a NaN: it never passes
            return math.inf
        if math.isinf(w) or math.isinf(g):
            if g != w:
                return math.inf
            continue
        err = max(err, abs(g - w))
    return err


def check(args):
    q, k, v = (read_npy("%s/%s.npy" % (args.dir, n), loom_output=False) for n in "QKV")
    docs = None
    if args.cu_seqlens:
        cu = [int(x) for x in args.cu_seqlens.split(",")]
        docs = [d for d in range(len(cu) - 1) for _ in range(cu[d], cu[d + 1])]
    want_out, want_lse = reference(q, k, v, args.causal, args.scale, docs,
                                   parse_score_mods(args.score_mods))
    shape, out = read_npy(args.out)
    assert shape == q[0], "O shape %s, expected %s" % (shape, q[0])
    errors = [("O", max_error(out, want_out))]
    if args.lse:
        shape, lse = read_npy(args.lse)
        B, Sq, Hq, _ = q[0]
        assert shape == (B, Hq, Sq), "LSE shape %s, expected %s" % (shape, (B, Hq, Sq))
        errors.append(("LSE", max_error(lse, want_lse)))
    ok = all(e <= args.tol for _, e in errors)
    print(" ".join("%s max abs err %.3g" % e for e in errors),
          "(tolerance %g):" % args.tol, "PASS" if ok else "FAIL")
    return 0 if ok else 1


def bad(args):
    path, kind = args.file, args.kind
    if kind == "f8":
        data = header_bytes((1, 2, 1, 8), descr="<f8") + bytes(8 * 16)
    elif kind == "fortran":
        data = header_bytes((1, 2, 1, 8), fortran=True) + bytes(4 * 16)
    elif kind == "bigendian":
        data = header_bytes((1, 2, 1, 8), descr=">f4") + bytes(4 * 16)
    elif kind == "truncated":  # 4096 bytes promised, 100 present
        data = header_bytes((1, 4, 4, 64)) + bytes(100)
    elif kind == "magic":
        data = b"PK\x03\x04 not an npy file at all"
    elif kind == "header":
        data = header_bytes((1, 2, 1, 8)).replace(b"'shape'", b"'shapE'") + bytes(4 * 16)
    elif kind == "version3":
        data = header_bytes((1, 2, 1, 8), version=2)
        data = data[:6] + b"\x03\x00" + data[8:] + bytes(4 * 16)
    elif kind == "rank3":
        data = header_bytes((7, 2, 8)) + bytes(4 * 7 * 2 * 8)
    else:
        sys.exit("unknown kind " + kind)
    open(path, "wb").write(data)


def plant(args):
    shape, data = read_npy(args.file, loom_output=False)
    data[args.index] = float(args.value)
    write_npy(args.file, shape, data)


def same_nonfinite(args):
    (sa, a), (sb, b) = read_npy(args.a), read_npy(args.b)
    assert sa == sb, "shapes %s and %s differ" % (sa, sb)
    nan = sum(1 for x in a if math.isnan(x))
    inf = sum(1 for x in a if math.isinf(x))
    ok = nan > 0
    for i, (x, y) in enumerate(zip(a, b)):
        if math.isnan(x) or math.isnan(y):
            same = math.isnan(x) and math.isnan(y)
        elif math.isinf(x) or math.isinf(y):
            same = x == y
        else:
            same = abs(x - y) <= args.tol
        if not same:
            print("element %d: %r vs %r" % (i, x, y))
            ok = False
            break
    print("%d NaN, %d inf:" % (nan, inf), "SAME" if ok else "DIFFER")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gen")
    p.add_argument("dir")
    p.add_argument("--q", type=parse_shape, required=True)
    p.add_argument("--kv", type=parse_shape, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--version", type=int, choices=(1, 2), default=1)
    p = sub.add_parser("check")
    p.add_argument("dir")
    p.add_argument("--out", required=True)
    p.add_argument("--lse")
    p.add_argument("--cu-seqlens")
    p.add_argument("--score-mods")
    p.add_argument("--causal", action="store_true")
    p.add_argument("--scale", type=float)
    p.add_argument("--tol", type=float, required=True)
    p = sub.add_parser("check-grads")
    p.add_argument("dir")
    p.add_argument("--dq", required=True)
    p.add_argument("--dk", required=True)
    p.add_argument("--dv", required=True)
    p.add_argument("--causal", action="store_true")
    p.add_argument("--scale", type=float)
    p.add_argument("--tol", type=float, required=True)
    p = sub.add_parser("bad")
    p.add_argument("file")
    p.add_argument("kind")
    p = sub.add_parser("plant")
    p.add_argument("file")
    p.add_argument("index", type=int)
    p.add_argument("value")
    p = sub.add_parser("same-nonfinite")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, required=True)
    args = parser.parse_args()
    return {"gen": gen, "check": check, "check-grads": check_grads, "bad": bad, "plant": plant,
            "same-nonfinite": same_nonfinite}[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
