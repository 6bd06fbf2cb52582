"""``einsum``: Einstein summation with torch's equation rules, differentiable.

The equation is first made explicit (``parse``): ``...`` becomes fresh letters, right-aligned
per operand; without ``->`` the output is the ellipsis letters then every letter used exactly
once, in ASCII order. Operands are broadcast (size-1 axes stretched) to the common size of each
letter, so forward and backward are plain ``np.einsum`` calls on explicit subscripts.

Gradient of operand ``k`` with subscripts ``t`` (``u`` = its distinct letters): the product of
the output gradient with every other operand, summed to ``u``,
``dL/dx_k[u] = einsum(out, others... -> u)``; a letter found nowhere else was summed over,
so its gradient is broadcast along it; a repeated letter (a diagonal, ``'ii->i'``) puts the
gradient back on that diagonal; finally axes stretched by broadcasting are summed back.
"""
from __future__ import annotations

import string

import numpy as np

from ..autograd.function import Function, unbroadcast


def _fail(msg: str):
    raise RuntimeError(f"einsum(): {msg}")


def parse(equation: str, shapes) -> tuple[list[str], str, dict]:
    """``(input terms, output term, size of each letter)`` with ellipses expanded."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): equation must be a str, got {type(equation).__name__}")
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) < len(shapes):
        _fail("more operands were provided than specified in the equation")
    if len(terms) > len(shapes):
        _fail("fewer operands were provided than specified in the equation")
    for part in terms + ([rhs] if arrow else []):
        rest = part.replace("...", "", 1)
        bad = [c for c in rest if c not in string.ascii_letters]
        if bad:
            _fail(f"invalid subscript given at '{bad[0]}' in equation {equation!r} "
                  "(subscripts are letters a-z, A-Z and one '...')")
    free = [c for c in string.ascii_letters if c not in eq]
    n_ell = 0
    for k, (t, shape) in enumerate(zip(terms, shapes)):
        n = len(t.replace("...", ""))
        if "..." in t:
            if n > len(shape):
                _fail(f"the number of subscripts in the equation ({n}) is more than the number "
                      f"of dimensions ({len(shape)}) for operand {k}")
            n_ell = max(n_ell, len(shape) - n)
        elif n != len(shape):
            _fail(f"the number of subscripts in the equation ({n}) does not match the number of "
                  f"dimensions ({len(shape)}) for operand {k} and no ellipsis was given")
    ell = "".join(free[:n_ell])
    # right-aligned: an operand with fewer ellipsis axes takes the last letters
    terms = [t.replace("...", ell[n_ell - (len(s) - len(t) + 3):]) for t, s in zip(terms, shapes)]
    sizes: dict[str, int] = {}
    for k, (t, shape) in enumerate(zip(terms, shapes)):
        for i, (c, n) in enumerate(zip(t, shape)):
            m = sizes.get(c, 1)
            if c in t[:i] and n != shape[t.index(c)]:
                _fail(f"subscript {c} is repeated for operand {k} but the sizes don't match, "
                      f"{m} != {n}")
            if m != 1 and n != 1 and m != n:
                _fail(f"operands do not broadcast: subscript {c} has size {m} and {n} "
                      f"(operand shapes {[tuple(s) for s in shapes]})")
            sizes[c] = max(m, n)
    if arrow:
        out = rhs.replace("...", ell)
        for i, c in enumerate(out):
            if c in out[:i]:
                _fail(f"output subscript {c} appears more than once in the output")
            if c not in sizes:
                _fail(f"output subscript {c} does not appear in the equation for any input operand")
    else:
        used = "".join(terms)
        once = sorted(c for c in set(used) if used.count(c) == 1 and c not in ell)
        out = ell + "".join(once)
    return terms, out, sizes


class Einsum(Function):
    def forward(self, *arrays, terms, out, sizes):
        self.terms, self.out, self.sizes = terms, out, sizes
        self.shapes = [a.shape for a in arrays]
        self.arrays = [np.broadcast_to(a, [sizes[c] for c in t]) for a, t in zip(arrays, terms)]
        return np.asarray(self._einsum(terms, out, self.arrays))

    @staticmethod
    def _einsum(terms, out, arrays):
        eq = ",".join(terms) + "->" + out
        return np.einsum(eq, *arrays, optimize=len(arrays) > 1)

    def backward(self, g):
        grads = []
        for k, t in enumerate(self.terms):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            others = [x for j, x in enumerate(self.terms) if j != k]
            other_arrays = [x for j, x in enumerate(self.arrays) if j != k]
            u = "".join(dict.fromkeys(t))  # distinct letters, first-occurrence order
            seen = set(self.out).union(*others) if others else set(self.out)
            keep = "".join(c for c in u if c in seen)
            gk = self._einsum([self.out] + others, keep, [g] + other_arrays)
            gk = np.broadcast_to(
                np.reshape(gk, [self.sizes[c] if c in keep else 1 for c in u]),
                [self.sizes[c] for c in u])
            if len(u) != len(t):  # put the gradient back on the diagonal(s)
                full = np.zeros([self.sizes[c] for c in t], dtype=g.dtype)
                grid = [np.arange(self.sizes[c]).reshape([-1 if d == c else 1 for d in u])
                        for c in t]
                full[tuple(grid)] = gk
                gk = full
            grads.append(unbroadcast(np.asarray(gk), self.shapes[k]))
        return tuple(grads)
