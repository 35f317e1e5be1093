"""Agglomerative clustering of voice embeddings (average linkage on cosine similarity).

The number of speakers in a meeting is not known in advance, so clusters are merged, the most
similar pair first, until no two are more alike than a threshold (chosen by measurement, see
bench/diarization.py). Average linkage (UPGMA) compares two groups by the mean similarity of
their members, weighted here by how many seconds each member stands for; with unit weights it
is scipy's `linkage(method="average", metric="cosine")` cut at distance `1 - threshold`, which
a test checks. Pure NumPy: the inputs are small (a few hundred items), so the O(n^2) matrix is.
"""

from __future__ import annotations

import numpy as np


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    data = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(data, axis=1, keepdims=True)
    return data / np.where(norms > 0, norms, 1.0)


def agglomerate(embeddings: np.ndarray, threshold: float,
                weights: np.ndarray | None = None) -> np.ndarray:
    """Cluster labels 0..k-1 (in order of first appearance) for each row of `embeddings`.

    Two clusters merge while the weighted mean cosine similarity between their members is at
    least `threshold`. `weights` (default 1 each) say how much each row counts.
    """
    data = normalise(np.asarray(embeddings))
    count = data.shape[0]
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    mass = np.ones(count) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    if mass.shape != (count,) or np.any(mass <= 0) or not np.all(np.isfinite(mass)):
        raise ValueError("weights must be one positive number per row")
    similarity = data @ data.T
    np.fill_diagonal(similarity, -np.inf)
    alive = np.ones(count, dtype=bool)
    parent = np.arange(count)
    while True:
        flat = int(np.argmax(similarity))
        i, j = divmod(flat, count)
        if not np.isfinite(similarity[i, j]) or similarity[i, j] < threshold:
            break
        # Merge j into i: the new row is the mass-weighted mean of the two rows (UPGMA).
        merged = (mass[i] * similarity[i] + mass[j] * similarity[j]) / (mass[i] + mass[j])
        mass[i] += mass[j]
        alive[j] = False
        parent[parent == j] = i
        merged[~alive] = -np.inf
        merged[i] = -np.inf
        similarity[i, :] = merged
        similarity[:, i] = merged
        similarity[j, :] = -np.inf
        similarity[:, j] = -np.inf
    return first_appearance(parent)


def first_appearance(labels: np.ndarray) -> np.ndarray:
    """Relabel so the first row's cluster is 0, the next new one 1, and so on."""
    order: dict[int, int] = {}
    out = np.empty(len(labels), dtype=np.int64)
    for index, label in enumerate(np.asarray(labels).tolist()):
        out[index] = order.setdefault(int(label), len(order))
    return out


def centroids(embeddings: np.ndarray, labels: np.ndarray,
              weights: np.ndarray | None = None) -> np.ndarray:
    """Unit-length weighted mean embedding of each cluster, (k, dim), k = labels.max() + 1."""
    data = normalise(np.asarray(embeddings))
    mass = np.ones(len(data)) if weights is None else np.asarray(weights, dtype=np.float64)
    k = int(labels.max()) + 1 if len(labels) else 0
    sums = np.zeros((k, data.shape[1]))
    np.add.at(sums, labels, data * mass[:, None])
    return normalise(sums)
