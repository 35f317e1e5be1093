"""Clustering is scipy's average linkage, weights mean what they say, and the bound holds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.cluster.hierarchy import fcluster, linkage

from meeting_governance.diarization.cluster import agglomerate, centroids, first_appearance
from meeting_governance.diarization.diarizer import ChunkWindows, DiarizationOptions, Diarizer

vectors = st.integers(2, 30).flatmap(
    lambda n: arrays(np.float64, (n, 6), elements=st.floats(-1, 1, allow_nan=False, width=32))
).filter(lambda x: bool(np.all(np.linalg.norm(x, axis=1) > 1e-3)))


@given(vectors, st.floats(-0.9, 0.99))
def test_agrees_with_scipys_average_linkage(data: np.ndarray, threshold: float) -> None:
    ours = agglomerate(data, threshold)
    distances = linkage(data, method="average", metric="cosine")[:, 2]
    # Where two merge heights sit on the threshold itself, either answer is right.
    if np.any(np.abs(distances - (1 - threshold)) < 1e-9):
        return
    theirs = first_appearance(fcluster(linkage(data, method="average", metric="cosine"),
                                       t=1 - threshold, criterion="distance"))
    assert ours.tolist() == theirs.tolist()


@given(vectors, st.floats(0.0, 0.95), st.integers(1, 4))
def test_a_weight_counts_as_that_many_copies(data: np.ndarray, threshold: float, copies: int) -> None:
    weights = np.ones(len(data))
    weights[0] = copies
    weighted = agglomerate(data, threshold, weights)
    repeated = agglomerate(np.vstack([np.repeat(data[:1], copies, axis=0), data[1:]]), threshold)
    assert weighted.tolist() == repeated[copies - 1:].tolist()


@given(vectors, st.floats(-0.5, 0.9), st.floats(0.0, 0.09))
def test_a_higher_threshold_never_merges_more(data: np.ndarray, low: float, more: float) -> None:
    assert agglomerate(data, low + more).max() >= agglomerate(data, low).max()


def test_labels_in_order_of_first_appearance_and_bad_weights_refused() -> None:
    data = np.array([[1.0, 0.0], [0.0, 1.0], [0.99, 0.05], [0.02, 1.0]])
    assert agglomerate(data, 0.9).tolist() == [0, 1, 0, 1]
    assert agglomerate(np.zeros((0, 2)), 0.5).tolist() == []
    assert centroids(data, np.array([0, 1, 0, 1])).shape == (2, 2)
    with pytest.raises(ValueError, match="positive"):
        agglomerate(data, 0.5, np.array([1.0, 0.0, 1.0, 1.0]))


def _chunk(rng: np.random.Generator, at: float, voices: np.ndarray, noise: float) -> ChunkWindows:
    """Ten 1.6 s windows every 0.8 s, each a noisy copy of one of `voices`."""
    which = rng.integers(0, len(voices), 10)
    embeddings = voices[which] + rng.normal(scale=noise, size=(10, voices.shape[1]))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    starts = at + 0.8 * np.arange(10)
    return ChunkWindows(starts, starts + 1.6, embeddings.astype(np.float32),
                        ((at, at + 0.8 * 9 + 1.6),))


@pytest.mark.parametrize(("noise", "speakers"), [(0.04, 3), (0.5, None)])
def test_long_recordings_keep_a_bounded_number_of_local_speakers(noise: float,
                                                                 speakers: int | None) -> None:
    """Memory: however many chunks come, the final clustering sees at most max_items rows,
    whether voices are alike (3 people) or nothing is (noise); memory itself is measured by
    bench/diarization.py, not timed here."""
    rng = np.random.default_rng(3)
    voices = rng.normal(size=(3, 64))
    voices /= np.linalg.norm(voices, axis=1, keepdims=True)
    diarizer = Diarizer(encoder=None, options=DiarizationOptions(max_items=40))  # type: ignore[arg-type]
    for index in range(60):
        diarizer.add(_chunk(rng, index * 10.0, voices, noise))
        assert len(diarizer._state.means) <= 40
    assert diarizer._compactions > 0
    turns = diarizer.finish()
    if speakers is not None:
        assert len({t.speaker for t in turns}) == speakers
