"""Cross-cell signal drift: is a new cell line's accessibility on the scale the model learnt?
And, optionally, quantile normalisation of the tracks to the training cells' scale.

The DNase-seq (or ATAC) of a new cell line comes at another depth and protocol than the
training cells'. FactorNet feeds the tracks as they are, so a cell sequenced 4x deeper shows
the model 4x taller peaks. `train run` records a profile of each training cell's signal in
the model dir (``signal_profile.json``); `predict` profiles the target store the same way and
warns, in one line with the figures, when a track is far outside the training cells' range.

The profile of a store (`signal_profile`) is computed on ``SAMPLE_BINS`` 200-bp bins drawn
uniformly over the genome (fixed seed, clear of the chromosome ends), per track:
- ``quantiles``: the 50th, 90th, 99th and 99.9th percentiles of the bins' mean signal;
- ``open_mean`` / ``closed_mean``: the mean signal of the most accessible ``OPEN_SHARE`` of
  the bins and of the rest, and ``contrast``, their ratio (how peaky the track is).
A target track drifts when its 99th percentile or its contrast is more than ``FAR`` times
(or less than 1 / ``FAR`` of) every training cell's.

Quantile normalisation (``--signal-normalization quantile``, chosen at `train run` and
recorded in signal_profile.json; or applied by `predict` to a model trained without it)
The profile also holds each track's per-base ``levels``: quantiles at ``LEVELS`` of the
sampled bases. The reference of a model is the mean of its training cells' levels; a cell is
mapped to it per track, piecewise linearly between matching levels (`SignalMap`, monotone;
above the top level the values are scaled by the ratio of the top levels). It is applied at
read time (`CellStore.signal_map`), to the training cells as to the cell a model is run on,
so a cell sequenced 4x deeper (or at a quarter of the depth) is fed on the training scale.
"""
from __future__ import annotations

import json

import numpy as np

from factornet_jax.errors import InputFileError

PROFILE_NAME = "signal_profile.json"
PROFILE_FORMAT = "factornet-jax/signal-profile"
PROFILE_VERSION = 1
QUANTILES = (0.5, 0.9, 0.99, 0.999)
LEVELS = tuple(np.round(np.linspace(0.0, 0.99, 100), 4).tolist()) + (0.995, 0.999, 0.9995, 0.9999)
NORMALIZATIONS = ("none", "quantile")
SAMPLE_BINS = 20_000
BIN = 200
OPEN_SHARE = 0.02
FAR = 2.0
EDGE = 10_000               # bins are drawn this far from the chromosome ends


def sample_bins(chrom_sizes, n=SAMPLE_BINS, seed=0):
    """(chroms (n,) str, starts (n,) int64): 200-bp bins uniform over the genome, fixed seed."""
    names = [c for c, size in chrom_sizes.items() if size > 2 * EDGE + BIN]
    if not names:
        names = [c for c, size in chrom_sizes.items() if size > BIN]
        edge = 0
    else:
        edge = EDGE
    spans = np.array([chrom_sizes[c] - 2 * edge - BIN for c in names], np.int64)
    rng = np.random.default_rng(seed)
    which = rng.choice(len(names), size=n, p=spans / spans.sum())
    starts = edge + (rng.random(n) * spans[which]).astype(np.int64)
    order = np.lexsort((starts, which))             # store order: fewer chunk switches
    return np.asarray(names)[which][order], starts[order]


def signal_profile(store, n_bins=SAMPLE_BINS, seed=0) -> dict:
    """The profile of a cell store's tracks (see the module docstring): a JSON-ready dict
    {track name: {"quantiles": [...], "open_mean", "closed_mean", "contrast"}}."""
    chroms, starts = sample_bins(store.chrom_sizes, n_bins, seed)
    means = np.empty((len(starts), store.num_tracks), np.float64)
    bases = np.empty((len(starts), BIN, store.num_tracks), np.float32)
    step = 4096
    for lo in range(0, len(starts), step):
        _, signal = store.fetch_batch(chroms[lo: lo + step], starts[lo: lo + step], BIN)
        means[lo: lo + step] = signal.mean(axis=1)
        bases[lo: lo + step] = signal
    out = {}
    n_open = max(1, int(round(OPEN_SHARE * len(means))))
    for k, name in enumerate(store.track_names):
        values = np.sort(means[:, k])
        open_mean = float(values[-n_open:].mean())
        closed_mean = float(values[:-n_open].mean()) if len(values) > n_open else 0.0
        out[name] = {"quantiles": [float(np.quantile(values, q)) for q in QUANTILES],
                     "open_mean": open_mean, "closed_mean": closed_mean,
                     "contrast": open_mean / closed_mean if closed_mean > 0 else None,
                     "levels": np.quantile(bases[:, :, k], LEVELS).astype(float).tolist()}
    return out


def reference_levels(profiles: dict) -> dict:
    """{track: (len(LEVELS),) reference levels}: the mean of the cells' levels (`profiles`:
    {cell: profile} with "levels", as signal_profile.json holds them)."""
    tracks = next(iter(profiles.values())).keys()
    return {t: np.mean([np.asarray(p[t]["levels"], np.float64) for p in profiles.values()], axis=0)
            for t in tracks}


class SignalMap:
    """Quantile normalisation of one cell's tracks: (B, L, S) float32 -> the same shape, each
    track mapped from its own levels to the reference levels (module docstring)."""

    def __init__(self, track_names, levels: dict, reference: dict):
        self.tables = []
        for track in track_names:
            src = np.asarray(levels[track], np.float64)
            ref = np.asarray(reference[track], np.float64)
            xs, inverse = np.unique(src, return_inverse=True)   # tied levels: their mean
            ys = np.bincount(inverse, weights=ref) / np.bincount(inverse)
            ys = np.maximum.accumulate(ys)                       # monotone
            top = ys[-1] / xs[-1] if xs[-1] > 0 else 1.0
            self.tables.append((xs, ys, top))

    def __call__(self, signal):
        out = np.empty_like(signal)
        for k, (xs, ys, top) in enumerate(self.tables):
            values = signal[..., k]
            mapped = np.interp(values, xs, ys)
            out[..., k] = np.where(values > xs[-1], values * top, mapped)
        return out


def normalize_stores(stores, profiles: dict, reference: dict):
    """Set each store's read-time SignalMap (its profile's levels -> `reference`)."""
    for store in stores:
        levels = {t: v["levels"] for t, v in profiles[store_name(store)].items()}
        store.signal_map = SignalMap(store.track_names, levels, reference)


def store_name(store):
    """A store's cell name as signal_profile.json keys it."""
    from pathlib import Path
    return Path(store.path).name.removesuffix(".zarr")


def write_profiles(model_dir, profiles: dict, normalization="none"):
    """signal_profile.json in a model dir: {cell name: profile} of the training cells (raw
    signal) and the read-time normalisation the model was trained with."""
    from factornet_jax.outputs import write_text_atomically
    doc = {"format": PROFILE_FORMAT, "version": PROFILE_VERSION, "bins": SAMPLE_BINS, "bin_size": BIN,
           "quantiles": list(QUANTILES), "levels": list(LEVELS), "open_share": OPEN_SHARE,
           "normalization": normalization, "cells": profiles}
    write_text_atomically(model_dir / PROFILE_NAME, json.dumps(doc, indent=1) + "\n")


def _read_doc(model_dir):
    path = model_dir / PROFILE_NAME
    if not path.is_file():
        return None
    from factornet_jax.modeldir import read_document
    doc = read_document(path, PROFILE_FORMAT, PROFILE_VERSION, "signal profile")
    if not isinstance(doc.get("cells"), dict):
        raise InputFileError(path, "no 'cells' table; write the model again with `factornet train run`")
    return doc


def read_profiles(model_dir):
    """{cell: profile} recorded with a model, or None (imported models, older model dirs)."""
    doc = _read_doc(model_dir)
    return None if doc is None else dict(doc["cells"])


def model_normalization(model_dir):
    """The read-time normalisation a model was trained with ("none" or "quantile")."""
    doc = _read_doc(model_dir)
    return "none" if doc is None else doc.get("normalization", "none")


def normalize_for_model(model, store, mode="auto", profile=None):
    """Set `store`'s read-time signal map for `model`: mode "auto" (the model's recorded
    choice), "none" or "quantile" (quantile matching to the model's training cells, also for a
    model trained without it). Returns the mode applied. `profile`: the store's profile of its
    raw signal when the caller has it (else it is computed here)."""
    from factornet_jax.errors import ConfigError
    if mode not in ("auto",) + NORMALIZATIONS:
        raise ConfigError(f"--signal-normalization {mode}: choose auto, none or quantile")
    applied = model_normalization(model.model_dir) if mode == "auto" else mode
    if applied == "none":
        return applied
    profiles = read_profiles(model.model_dir)
    if not profiles or any("levels" not in p.get(t, {}) for p in profiles.values() for t in p):
        raise ConfigError(f"--signal-normalization quantile: model {model.model_dir} has no "
                          f"training-cell levels ({PROFILE_NAME} from a current `train run`); "
                          "use --signal-normalization none")
    if profile is None:
        store.signal_map = None
        profile = signal_profile(store)
    levels = {t: v["levels"] for t, v in profile.items()}
    store.signal_map = SignalMap(store.track_names, levels, reference_levels(profiles))
    return applied


def _ratio_outside(value, references):
    """value / the nearest reference when value lies outside [min / FAR, max * FAR], else None."""
    references = [r for r in references if r]
    if value is None or not references:
        return None
    low, high = min(references), max(references)
    if value > high * FAR:
        return value / high
    if value < low / FAR:
        return value / low
    return None


def drift_messages(training: dict, target: dict) -> list:
    """One phrase per drifting track: "DNase 99th percentile 4.1x, contrast 0.4x the training
    cells'" (empty when the target is within range)."""
    messages = []
    for track, profile in target.items():
        refs = [cell[track] for cell in training.values() if track in cell]
        if not refs:
            continue
        parts = []
        q99 = _ratio_outside(profile["quantiles"][2], [r["quantiles"][2] for r in refs])
        if q99 is not None:
            parts.append(f"99th percentile {q99:.2g}x")
        contrast = _ratio_outside(profile["contrast"], [r["contrast"] for r in refs])
        if contrast is not None:
            parts.append(f"open/closed contrast {contrast:.2g}x")
        if parts:
            messages.append(f"{track} {', '.join(parts)}")
    return messages


def check_drift(model, store, profile=None):
    """Warn (one line on stderr) when `store`'s tracks are far from `model`'s training cells';
    returns the phrases (empty: no drift, or no profile recorded with the model). `profile`:
    the store's `signal_profile` when the caller has it already."""
    training = read_profiles(model.model_dir)
    if not training:
        return []
    messages = drift_messages(training, profile or signal_profile(store))
    if messages:
        from factornet_jax.progress import warn
        warn(f"-i {store.path}: signal far from the training cells' ({'; '.join(messages)} of "
             f"the nearest training cell); scores may be shifted: --signal-normalization quantile "
             "feeds the tracks on the training cells' scale (docs/ACCURACY.md, \"A cell at "
             "another depth\")")
    return messages
