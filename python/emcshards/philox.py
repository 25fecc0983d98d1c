"""Philox4x32-10 and emc's CounterRNG, vectorised over indices with numpy (docs/shard-format.md, "Random numbers")."""
import numpy as np

MASK = np.uint64(0xFFFFFFFF)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Ten rounds of Philox4x32 on arrays (or scalars) of 32-bit words held in uint64; returns (w0, w1, w2, w3)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & MASK for c in (c0, c1, c2, c3))
    k0, k1 = int(k0) & 0xFFFFFFFF, int(k1) & 0xFFFFFFFF
    for r in range(10):
        if r:
            k0 = (k0 + _W0) & 0xFFFFFFFF
            k1 = (k1 + _W1) & 0xFFFFFFFF
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & MASK, (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & MASK
    return c0, c1, c2, c3


class CounterRNG:
    """A stateless random source: (seed, stream) names a sequence and an index picks its element."""

    def __init__(self, seed, stream):
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.stream = int(stream) & 0xFFFFFFFF

    def block(self, index, attempt=0):
        index = np.asarray(index, dtype=np.uint64)
        return philox4x32(index & MASK, index >> np.uint64(32), np.full(index.shape, self.stream, dtype=np.uint64),
                          np.full(index.shape, attempt & 0xFFFFFFFF, dtype=np.uint64), self.seed & 0xFFFFFFFF, self.seed >> 32)

    def derived(self, salt):
        w0, w1, _, _ = self.block(np.uint64(salt), 0xFFFFFFFF)
        return CounterRNG(int(w0) | int(w1) << 32, self.stream)

    def derived_many(self, salts):
        """The seeds of derived(salt) for an array of salts (as uint64)."""
        w0, w1, _, _ = self.block(np.asarray(salts, dtype=np.uint64), 0xFFFFFFFF)
        return w0 | (w1 << np.uint64(32))

    def word64(self, index):
        w0, w1, _, _ = self.block(index)
        return w0 | (w1 << np.uint64(32))

    def uniform_double(self, index):
        return (self.word64(index) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53

    def int_below(self, index, bound):
        """Lemire's unbiased integer in [0, bound) for each index (bound < 2**32)."""
        index = np.atleast_1d(np.asarray(index, dtype=np.uint64))
        bound = int(bound)
        threshold = np.uint64(((1 << 32) - bound) % bound)
        out = np.zeros(index.shape, dtype=np.uint64)
        pending = np.ones(index.shape, dtype=bool)
        attempt = 0
        b = np.uint64(bound)
        while pending.any():
            lanes = self.block(index[pending], attempt)
            result = np.zeros(int(pending.sum()), dtype=np.uint64)
            found = np.zeros(int(pending.sum()), dtype=bool)
            for w in lanes:
                m = w * b
                ok = ~found & ((m & MASK) >= threshold)
                result[ok] = m[ok] >> np.uint64(32)
                found |= ok
            where = np.flatnonzero(pending)
            out[where[found]] = result[found]
            pending[where[found]] = False
            attempt += 1
        return out

    def normal_pair(self, index):
        w0, w1, _, _ = self.block(index)
        u1 = (w0.astype(np.float64) + 1.0) * 2.0 ** -32
        u2 = w1.astype(np.float64) * 2.0 ** -32
        r = np.sqrt(-2.0 * np.log(u1))
        theta = 2.0 * np.pi * u2
        return r * np.cos(theta), r * np.sin(theta)

    def permutation(self, count):
        """Fisher-Yates driven by this stream: for i from count-1 down to 1, swap i and int(i, below: i+1)."""
        order = np.arange(count, dtype=np.int64)
        if count < 2:
            return order
        i = np.arange(count - 1, 0, -1, dtype=np.uint64)
        js = np.empty(count - 1, dtype=np.uint64)
        # int_below with a different bound per index: group by bound is pointless (all differ), so vectorise the
        # rejection test with per-element thresholds.
        bounds = i + np.uint64(1)
        thresholds = ((np.uint64(1) << np.uint64(32)) - bounds) % bounds
        pending = np.ones(count - 1, dtype=bool)
        attempt = 0
        while pending.any():
            where = np.flatnonzero(pending)
            lanes = self.block(i[where], attempt)
            found = np.zeros(where.size, dtype=bool)
            result = np.zeros(where.size, dtype=np.uint64)
            for w in lanes:
                m = w * bounds[where]
                ok = ~found & ((m & MASK) >= thresholds[where])
                result[ok] = m[ok] >> np.uint64(32)
                found |= ok
            js[where[found]] = result[found]
            pending[where[found]] = False
            attempt += 1
        for k, j in zip(range(count - 1, 0, -1), js.tolist()):
            order[k], order[j] = order[j], order[k]
        return order
