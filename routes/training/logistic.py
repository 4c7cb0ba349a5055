"""L2-regularised logistic regression on sparse rows, in plain numpy (training time only).

Serving must not depend on scikit-learn or scipy, and training is small (~12k prompts), so a
compact L-BFGS over a hand-rolled CSR matrix is enough: each iteration is two sparse products
built from `np.add.reduceat` and `np.bincount`. Targets may be soft (any value in [0, 1]); the
log loss is a proper scoring rule, so the fitted probability estimates the expected target.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SparseRows:
    """A CSR matrix: row i holds `values[indptr[i]:indptr[i+1]]` at columns `indices[...]`."""

    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    values: Array
    n_cols: int

    @property
    def n_rows(self) -> int:
        return self.indptr.size - 1

    def dot(self, weights: Array) -> Array:
        """Row-wise dot products with a dense weight vector."""
        products = weights[self.indices] * self.values
        out = np.zeros(self.n_rows)
        nonempty = np.flatnonzero(np.diff(self.indptr) > 0)
        if products.size:
            out[nonempty] = np.add.reduceat(products, self.indptr[nonempty])
        return out

    def rdot(self, row_weights: Array) -> Array:
        """Transpose product: sum over rows of row_weight * row."""
        per_entry = np.repeat(row_weights, np.diff(self.indptr)) * self.values
        # float64 already (weights given): numpy's stub types every bincount as counts, astype copies nothing
        return np.bincount(self.indices, weights=per_entry, minlength=self.n_cols).astype(np.float64, copy=False)


def _sigmoid(z: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit(
    dense: Array,
    sparse: SparseRows,
    target: Array,
    sample_weight: Array,
    l2: float,
    max_iter: int = 300,
    tol: float = 1e-6,
) -> tuple[Array, Array, float]:
    """Fit weights for [dense | sparse] columns and a bias; returns (dense_w, sparse_w, bias).

    Minimises the weighted mean log loss + l2/2 * |w|^2 (the bias is not penalised) with L-BFGS and a
    backtracking Armijo line search.
    """
    d = dense.shape[1]
    weight = sample_weight / sample_weight.sum()
    size = d + sparse.n_cols + 1

    def loss_grad(theta: Array) -> tuple[float, Array]:
        w_dense, w_sparse, bias = theta[:d], theta[d:-1], theta[-1]
        z = dense @ w_dense + sparse.dot(w_sparse) + bias
        # log(1 + e^z) - y z, computed stably
        loss = float(weight @ (np.logaddexp(0.0, z) - target * z)) + 0.5 * l2 * float(theta[:-1] @ theta[:-1])
        residual = weight * (_sigmoid(z) - target)
        grad = np.empty(size)
        grad[:d] = dense.T @ residual
        grad[d:-1] = sparse.rdot(residual)
        grad[-1] = residual.sum()
        grad[:-1] += l2 * theta[:-1]
        return loss, grad

    theta = np.zeros(size)
    loss, grad = loss_grad(theta)
    history: deque[tuple[Array, Array]] = deque(maxlen=10)
    for _ in range(max_iter):
        direction = _two_loop(grad, history)
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            history.clear()
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0
        while True:
            candidate = theta + step * direction
            new_loss, new_grad = loss_grad(candidate)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, y = candidate - theta, new_grad - grad
        if float(s @ y) > 1e-12:
            history.append((s, y))
        converged = abs(loss - new_loss) <= tol * max(1.0, abs(loss))
        theta, loss, grad = candidate, new_loss, new_grad
        if converged:
            break
    return theta[:d], theta[d:-1], float(theta[-1])


def _two_loop(grad: Array, history: deque[tuple[Array, Array]]) -> Array:
    """L-BFGS two-loop recursion: an approximate Newton step from the last few (s, y) pairs."""
    q = grad.copy()
    alphas = []
    for s, y in reversed(history):
        rho = 1.0 / float(y @ s)
        alpha = rho * float(s @ q)
        q -= alpha * y
        alphas.append((rho, alpha, s, y))
    if history:
        s, y = history[-1]
        q *= float(s @ y) / float(y @ y)
    for rho, alpha, s, y in reversed(alphas):
        beta = rho * float(y @ q)
        q += (alpha - beta) * s
    return -q
