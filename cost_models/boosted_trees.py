"""Gradient-boosted regression trees: a small, deterministic numpy implementation.

Used by the latency model's fitted fallback (``latency._Fit``) to learn how far a kernel's measured time
sits from the kind's linear line, from its shape (channels, map size, kernel, stride, remainders of the
channel counts against the runtime's SIMD steps). A few hundred table entries a kind, a few dozen
features: histogram splits (each feature cut at up to ``bins`` quantiles of the training values),
squared error, shrinkage and row subsampling, as in the usual gradient-boosting recipe (Friedman 2001).

The trees are complete binary trees of a fixed depth stored as arrays, so prediction is vectorised; a
node that cannot split sends every row left. Randomness (the row subsamples) comes from its own seeded
generator and never touches numpy's or torch's global random state.
"""
from __future__ import annotations

import numpy as np

_NO_SPLIT = np.iinfo(np.int64).max


class BoostedTrees:
    """``BoostedTrees(X, y)`` fits; ``predict(X)`` returns one value per row (the units of ``y``)."""

    def __init__(self, features: np.ndarray, targets: np.ndarray, trees: int = 200, depth: int = 3,
                 learning_rate: float = 0.1, min_leaf: int = 5, subsample: float = 0.8, bins: int = 32,
                 seed: int = 0):
        features = np.asarray(features, dtype=float)
        targets = np.asarray(targets, dtype=float)
        if features.ndim != 2 or len(features) != len(targets) or len(targets) == 0:
            raise ValueError(f"BoostedTrees needs a 2-D feature array with one row per target; got "
                             f"{features.shape} features for {targets.shape} targets")
        self.depth = depth
        self.learning_rate = learning_rate
        self.base = float(np.median(targets))
        self.edges = [_cut_points(column, bins) for column in features.T]
        codes = self._codes(features)
        rng = np.random.default_rng(seed)
        internal = 2 ** depth - 1
        self.split_feature = np.zeros((trees, internal), dtype=np.int64)
        self.split_code = np.full((trees, internal), _NO_SPLIT, dtype=np.int64)  # every row goes left
        self.leaf_value = np.zeros((trees, 2 ** depth))
        predicted = np.full(len(targets), self.base)
        for tree in range(trees):
            rows = np.flatnonzero(rng.random(len(targets)) < subsample)
            if len(rows) < 2 * min_leaf:
                rows = np.arange(len(targets))
            self._grow(tree, codes, targets - predicted, rows, min_leaf)
            predicted += learning_rate * self.leaf_value[tree, self._leaves(tree, codes)]
        # the splits as values (a row goes right when its feature is above the threshold), and as lists
        # for one row at a time (``predict_one``: a latency model prices kernels one by one)
        self.split_threshold = np.full(self.split_code.shape, np.inf)
        for tree, node in zip(*np.nonzero(self.split_code != _NO_SPLIT)):
            edges = self.edges[self.split_feature[tree, node]]
            self.split_threshold[tree, node] = edges[self.split_code[tree, node]]
        self._walk = [(self.split_feature[tree].tolist(), self.split_threshold[tree].tolist(),
                       (self.learning_rate * self.leaf_value[tree]).tolist()) for tree in range(trees)]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """One value per row of ``features`` (2-D; a 1-D array is one row)."""
        codes = self._codes(np.atleast_2d(np.asarray(features, dtype=float)))
        total = np.full(len(codes), self.base)
        for tree in range(len(self.leaf_value)):
            total += self.learning_rate * self.leaf_value[tree, self._leaves(tree, codes)]
        return total

    def predict_one(self, row) -> float:
        """``predict`` of one row (a sequence of floats), without numpy's per-call cost."""
        row = [float(value) for value in row]
        total = self.base
        first_leaf = 2 ** self.depth - 1
        for features, thresholds, leaves in self._walk:
            node = 0
            while node < first_leaf:
                node = 2 * node + (2 if row[features[node]] > thresholds[node] else 1)
            total += leaves[node - first_leaf]
        return total

    # --- internals --------------------------------------------------------------------------------
    def _codes(self, features: np.ndarray) -> np.ndarray:
        """Each value's bin: code k means the value is at most ``edges[k]`` (and above ``edges[k-1]``)."""
        return np.stack([np.searchsorted(edges, column, side="left")
                         for edges, column in zip(self.edges, features.T)], axis=1)

    def _leaves(self, tree: int, codes: np.ndarray) -> np.ndarray:
        node = np.zeros(len(codes), dtype=np.int64)
        for _ in range(self.depth):
            feature, code = self.split_feature[tree, node], self.split_code[tree, node]
            right = codes[np.arange(len(codes)), feature] > code
            node = 2 * node + 1 + right
        return node - (2 ** self.depth - 1)

    def _grow(self, tree: int, codes: np.ndarray, residuals: np.ndarray, rows: np.ndarray, min_leaf: int):
        """One tree, level by level: each node takes the split of largest squared-error reduction."""
        width = max(len(edges) for edges in self.edges) + 1
        columns = codes.shape[1]
        members = {0: rows}
        for node in range(2 ** self.depth - 1):
            here = members.pop(node, rows[:0])
            left, right = here, here[:0]
            if len(here) >= 2 * min_leaf:
                split = _best_split(codes[here], residuals[here], width, columns, min_leaf)
                if split is not None:
                    feature, code = split
                    self.split_feature[tree, node], self.split_code[tree, node] = feature, code
                    goes_right = codes[here, feature] > code
                    left, right = here[~goes_right], here[goes_right]
            members[2 * node + 1], members[2 * node + 2] = left, right
        first_leaf = 2 ** self.depth - 1
        for leaf in range(2 ** self.depth):
            here = members.get(first_leaf + leaf, rows[:0])
            self.leaf_value[tree, leaf] = float(residuals[here].mean()) if len(here) else 0.0


def _cut_points(column: np.ndarray, bins: int) -> np.ndarray:
    """Thresholds between distinct values of a column, at most ``bins - 1`` of them (at its quantiles)."""
    values = np.unique(column)
    if len(values) > bins:
        values = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)))
    return (values[:-1] + values[1:]) / 2


def _best_split(codes: np.ndarray, residuals: np.ndarray, width: int, columns: int,
                min_leaf: int) -> tuple[int, int] | None:
    """(feature, code) of the split with the largest reduction in squared error, or None."""
    flat = (codes + width * np.arange(columns)).ravel()
    sums = np.bincount(flat, np.repeat(residuals, columns), minlength=width * columns).reshape(columns, width)
    counts = np.bincount(flat, minlength=width * columns).reshape(columns, width)
    left_sum, left_count = np.cumsum(sums, axis=1)[:, :-1], np.cumsum(counts, axis=1)[:, :-1]
    total_sum, total_count = residuals.sum(), len(residuals)
    right_sum, right_count = total_sum - left_sum, total_count - left_count
    allowed = (left_count >= min_leaf) & (right_count >= min_leaf)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = left_sum ** 2 / left_count + right_sum ** 2 / right_count - total_sum ** 2 / total_count
    gain = np.where(allowed, gain, -np.inf)
    feature, code = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if not np.isfinite(gain[feature, code]) or gain[feature, code] <= 1e-12:
        return None
    return int(feature), int(code)
