"""The logistic fit behind the linear score: soft targets, row weights, dense and sparse columns."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_array
from scipy.special import expit

from routes.training.logistic import fit


def test_each_group_is_fitted_to_its_weighted_mean_soft_target() -> None:
    """Log loss is a proper scoring rule: with one indicator per group (a dense one and a sparse one
    beside the bias, so the model is saturated), each group's probability is its weighted mean target."""
    rng = np.random.default_rng(0)
    group = np.arange(600) % 3  # 0: neither column, 1: the dense column, 2: the sparse column
    target = np.choose(group, [rng.uniform(0.0, 0.4, 600), rng.uniform(0.3, 0.7, 600), rng.uniform(0.6, 1.0, 600)])
    weight = rng.uniform(0.5, 2.0, 600)
    dense = (group == 1).astype(np.float64)[:, None]
    in_sparse = group == 2
    sparse = csr_array((np.ones(in_sparse.sum()), np.zeros(in_sparse.sum(), dtype=np.int64),
                        np.concatenate(([0], np.cumsum(in_sparse)))), shape=(600, 1))
    w_dense, w_sparse, bias = fit(dense, sparse, target, weight, l2=0.0)
    fitted = expit([bias, bias + w_dense[0], bias + w_sparse[0]])
    expected = [np.average(target[group == g], weights=weight[group == g]) for g in range(3)]
    np.testing.assert_allclose(fitted, expected, atol=1e-4)
    assert expected[0] < 0.3 < expected[1] < 0.6 < expected[2]  # three distinct values to recover


def test_the_penalty_shrinks_weights_but_not_the_bias() -> None:
    target = np.array([0.9, 0.9, 0.9, 0.1])
    dense = np.array([[1.0], [1.0], [1.0], [-1.0]])
    no_columns = csr_array((4, 0))
    free, _, _ = fit(dense, no_columns, target, np.ones(4), l2=0.0)
    shrunk, _, bias = fit(dense, no_columns, target, np.ones(4), l2=10.0)
    assert 0 < shrunk[0] < 0.05 * free[0]
    assert expit(bias) == pytest.approx(target.mean(), abs=0.02)  # the bias still carries the base rate
