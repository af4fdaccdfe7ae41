"""Risk bands: cut points, merging bands below k, crossing bands with behaviour, names.

    band_cuts(spec, reference) -> cut points (declared, or quantiles of the reference scores)
    bands_of(scores, cuts) -> band of each score (0 = safest)
    merge_small_bands(bands, k) -> (bands with every band >= k, merges)
    cross_behaviour(bands, x, clusters, k, sample_size, seed) -> (personas, band of each)
    band_names(generated, persona_band, n_bands) -> persona names, risk word first

Used by the predictive strategy (engine.segment.predictive).
"""

from __future__ import annotations

import numpy as np

from engine.config import PredictiveSpec
from engine.segment.kmeans import KMeansStrategy

# Risk words by relative band position (lowest first): names say where a band sits.
RISK_WORDS = ("lowest-risk", "low-risk", "moderate-risk", "elevated-risk", "high-risk")
TOP_RISK_WORD = "highest-risk"


def band_cuts(spec: PredictiveSpec, reference: np.ndarray) -> np.ndarray:
    """Declared cut points, else quantiles of the calibrated out-of-fold scores (deduplicated:
    isotonic maps are step functions, so two quantiles can fall on one step)."""
    if spec.band_cuts:
        return np.asarray(spec.band_cuts, dtype=np.float64)
    return np.unique(np.quantile(reference, spec.band_quantiles))


def bands_with_merges(oof: np.ndarray, spec: PredictiveSpec, k: int) -> np.ndarray:
    return merge_small_bands(bands_of(oof, band_cuts(spec, oof)), k)[0]


def bands_of(scores: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.searchsorted(cuts, scores, side="right").astype(np.int64)


def contiguous(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..m-1 keeping order (risk order survives merges)."""
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def merge_small_bands(bands: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Merge every band below k into its smaller adjacent neighbour; bands stay ordered."""
    out, merges = contiguous(bands), 0
    while True:
        counts = np.bincount(out)
        if len(counts) < 2 or counts.min() >= k:
            return out, merges
        b = int(np.argmin(counts))
        neighbours = [n for n in (b - 1, b + 1) if 0 <= n < len(counts)]
        target = min(neighbours, key=lambda n: (counts[n], n))
        out = contiguous(np.where(out == b, target, out))
        merges += 1


def cross_behaviour(
    bands: np.ndarray, x: np.ndarray, clusters: int, k: int, sample_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(persona labels, band of each persona): band x behavioural cluster, small cells merged
    into the largest cell of their band, personas ordered by (band, cluster)."""
    km = KMeansStrategy(sample_size=sample_size, seed=seed, k=clusters).fit_matrix(x)
    cell = bands * clusters + km.predict_matrix(x)
    for b in np.unique(bands):
        in_band = bands == b
        ids, counts = np.unique(cell[in_band], return_counts=True)
        largest = int(ids[np.lexsort((ids, -counts))[0]])
        small = ids[counts < k]
        cell[in_band & np.isin(cell, small)] = largest
    labels = contiguous(cell)
    persona_band = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    persona_band[labels] = bands
    return labels, persona_band


def risk_word(band: int, bands: int) -> str:
    if band == bands - 1:
        return TOP_RISK_WORD
    if band == 0:
        return RISK_WORDS[0]
    # Middle bands spread over the middle words, in order.
    middle = RISK_WORDS[1:]
    return middle[min(len(middle) - 1, (band - 1) * len(middle) // max(1, bands - 2))]


def band_names(generated: list[str], persona_band: np.ndarray, n_bands: int) -> list[str]:
    """Risk word first; the behavioural name (without its own risk word) when crossed."""
    out: list[str] = []
    crossed = len(generated) > n_bands
    for pid, gen in enumerate(generated):
        word = risk_word(int(persona_band[pid]), n_bands)
        rest = " ".join(w for w in gen.split() if not w.endswith("-risk"))
        name = f"{word} {rest}" if crossed else f"{word} band {int(persona_band[pid]) + 1}"
        base, n = name, 2
        while name in out:
            name, n = f"{base} {n}", n + 1
        out.append(name)
    return out
