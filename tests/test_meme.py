"""MEME format reading/writing and PWM helpers (meme.py)."""
import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from factornet_jax.errors import FactorNetError, InputFileError
from factornet_jax.meme import (
    Motif, find_motif, format_meme, information_content, log_odds, max_score, read_meme,
    read_meme_file, reverse_complement, scan_max, scan_scores, write_meme,
)

from factornet_jax.reference_files import default_motif_db

HOCOMOCO = default_motif_db()       # packaged with the project (resources/)

MINIMAL = """MEME version 4

ALPHABET= ACGT

strands: + -

Background letter frequencies (from file `bkg.txt'):
A 0.3 C 0.2 G 0.2 T 0.3

MOTIF CTCF_f2 CTCF

letter-probability matrix: alength= 4 w= 3 nsites= 12 E= 1.5e-10
  1.0 0.0 0.0 0.0
  0.25 0.25 0.25 0.25
  0.1	0.2	0.3	0.4
URL http://example.org

MOTIF lonely
letter-probability matrix: alength= 4 w= 1 nsites= 5 E= 0
0 0 1 0
"""


def _pwm_strategy(max_width=8):
    rows = hnp.arrays(np.float64, st.tuples(st.integers(1, max_width), st.just(4)),
                      elements=st.floats(0.01, 1.0))
    return rows.map(lambda a: a / a.sum(axis=1, keepdims=True))


def test_read_minimal_golden(tmp_path):
    path = tmp_path / "m.meme"
    path.write_text(MINIMAL)
    meme = read_meme_file(path)
    assert np.allclose(meme.background, [0.3, 0.2, 0.2, 0.3])
    first, second = meme.motifs
    assert (first.name, first.alt_name, first.nsites, first.evalue, first.width) == ("CTCF_f2", "CTCF", 12, 1.5e-10, 3)
    assert np.allclose(first.pwm, [[1, 0, 0, 0], [0.25] * 4, [0.1, 0.2, 0.3, 0.4]])
    assert (second.name, second.alt_name, second.evalue) == ("lonely", None, 0.0)
    assert np.allclose(second.pwm, [[0, 0, 1, 0]])
    # gzipped copy reads the same
    gz = tmp_path / "m.meme.gz"
    gz.write_bytes(gzip.compress(MINIMAL.encode()))
    assert read_meme(gz) == read_meme(path)


@settings(max_examples=30, deadline=None)
@given(st.lists(_pwm_strategy(), min_size=1, max_size=4), st.booleans())
def test_write_read_round_trip(tmp_path_factory, pwms, gzipped):
    motifs = [Motif(f"M{i}_x", "M" if i % 2 else None, pwm, nsites=7 + i, evalue=None if i % 2 else 2.5e-3)
              for i, pwm in enumerate(pwms)]
    path = tmp_path_factory.mktemp("rt") / ("m.meme.gz" if gzipped else "m.meme")
    write_meme(path, motifs, background=[0.3, 0.2, 0.2, 0.3])
    meme = read_meme_file(path)
    assert np.allclose(meme.background, [0.3, 0.2, 0.2, 0.3])
    assert len(meme.motifs) == len(motifs)
    for got, want in zip(meme.motifs, motifs):
        assert (got.name, got.alt_name, got.nsites) == (want.name, want.alt_name, want.nsites)
        assert got.evalue == pytest.approx(want.evalue or 0.0, rel=0.05)
        assert np.allclose(got.pwm, want.pwm, atol=2e-6)
        assert np.allclose(got.pwm.sum(axis=1), 1.0)
    # writing what was read gives the same text (stable format)
    assert format_meme(meme.motifs, meme.background) == format_meme(read_meme(path), meme.background)


@pytest.mark.parametrize("text, line, words", [
    ("ALPHABET= ACGT\n", 1, "MEME version"),
    ("MEME version 4\nALPHABET= ACGU\n", 2, "alphabet"),
    ("MEME version 4\nletter-probability matrix: alength= 4 w= 1\n0 0 1 0\n", 2, "before any MOTIF"),
    ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 4 w= 2\n0 0 1 0\n", 4, "ends after 1 of 2"),
    ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 4 w= 1\n0 0 1\n", 4, "3 values"),
    ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 4 w= 1\n0.5 0 1 0\n", 4, "sums to 1.5"),
    ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 4 w= 1\n0 x 1 0\n", 4, "not numbers"),
    ("MEME version 4\nMOTIF a\nletter-probability matrix: alength= 20 w= 1\n", 3, "alength= 4"),
    ("MEME version 4\nBackground letter frequencies\nA 0.5 C 0.5\n", 3, "background"),
])
def test_malformed_files_name_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "bad.meme"
    path.write_text(text)
    with pytest.raises(InputFileError) as err:
        read_meme(path)
    assert f"bad.meme:{line}:" in str(err.value)
    assert words in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_meme(tmp_path / "nope.meme")


def _motif(name, alt=None):
    return Motif(name, alt, np.full((2, 4), 0.25))


def test_find_motif_order_of_rules():
    motifs = [_motif("CTCFL_HUMAN.H11MO.0.A"), _motif("ZN143_si", "ZNF143"), _motif("xCTCF_HUMAN"),
              _motif("CTCF_HUMAN.H11MO.0.A"), _motif("REST_f1", "REST"), _motif("rest")]
    assert find_motif(motifs, "rest").name == "rest"  # exact name beats case-insensitive alt
    assert find_motif(motifs, "REST").name == "REST_f1"  # exact alt name
    assert find_motif(motifs, "zn143_SI").name == "ZN143_si"  # case-insensitive name
    assert find_motif(motifs, "znf143").name == "ZN143_si"  # case-insensitive alt name
    assert find_motif(motifs, "ctcf").name == "CTCF_HUMAN.H11MO.0.A"  # prefix + separator beats CTCFL
    assert find_motif(motifs, "CTCFL").name == "CTCFL_HUMAN.H11MO.0.A"
    assert find_motif(motifs, "ZN14").name == "ZN143_si"  # plain prefix
    assert find_motif(motifs, "H11MO").name == "CTCFL_HUMAN.H11MO.0.A"  # substring, first in file
    with pytest.raises(FactorNetError, match="no motif matches 'GATA1'"):
        find_motif(motifs, "GATA1")


def test_hocomoco_file():
    motifs = read_meme(HOCOMOCO)
    assert len(motifs) == 428
    ctcf = find_motif(motifs, "CTCF")
    assert (ctcf.name, ctcf.width, ctcf.nsites) == ("CTCF_f2", 19, 2861)
    assert find_motif(motifs, "ZNF143").name == "ZN143_si"
    assert all(np.allclose(m.pwm.sum(axis=1), 1.0) for m in motifs)


def test_packaged_motifs_cover_simulation_defaults():
    motifs = read_meme(HOCOMOCO)
    for name in ("CTCF", "GABPA", "ZNF143", "SP1", "REST", "YY1"):
        assert name in find_motif(motifs, name).alt_name
    assert find_motif(motifs, "CTCF").width == 19


def test_pwm_helpers_golden():
    pwm = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]])
    assert np.array_equal(reverse_complement(pwm), [[0.4, 0.3, 0.2, 0.1], [0.25] * 4, [0, 0, 0, 1.0]])
    assert np.allclose(information_content(pwm), [2.0, 0.0, 2 + (0.1 * np.log2(0.1) + 0.2 * np.log2(0.2)
                                                            + 0.3 * np.log2(0.3) + 0.4 * np.log2(0.4))])
    scores = log_odds(pwm, pseudocount=0.0)
    assert scores[0, 0] == 2.0 and scores[0, 1] == -np.inf and np.all(scores[1] == 0)
    smoothed = log_odds(pwm, background=[0.3, 0.2, 0.2, 0.3], pseudocount=0.1)
    assert smoothed[0, 1] == pytest.approx(np.log2((0.1 * 0.2 / 1.1) / 0.2))
    assert smoothed[0, 0] == pytest.approx(np.log2((1 + 0.03) / 1.1 / 0.3))
    assert max_score(pwm, pseudocount=0.0) == pytest.approx(2 + 0 + np.log2(0.4 / 0.25))


def _oracle_scan_max(codes, pwm):
    """Slow obvious implementation: every offset, both strands, N scores 0."""
    scores = log_odds(pwm)
    width = len(pwm)
    rc = scores[::-1, ::-1]
    best = -np.inf
    for i in range(len(codes) - width + 1):
        for mat in (scores, rc):
            best = max(best, sum(mat[k, c] if c < 4 else 0.0 for k, c in enumerate(codes[i:i + width])))
    return best


@settings(max_examples=40, deadline=None)
@given(_pwm_strategy(6), st.lists(st.integers(0, 4), min_size=1, max_size=30))
def test_scan_max_matches_oracle(pwm, seq):
    codes = np.array(seq, dtype=np.uint8)
    got = scan_max(codes[None], pwm, onehot=False)[0]
    want = _oracle_scan_max(codes, pwm)
    if not np.isfinite(want):  # sequence shorter than the motif
        assert got == -np.inf
        return
    assert got == pytest.approx(want)
    onehot = np.eye(5, 4, dtype=np.uint8)[codes]  # code 4 -> all-zero row
    assert scan_max(onehot, pwm, onehot=True) == pytest.approx(got)


def test_scan_batch_shapes_and_soft_onehot():
    rng = np.random.default_rng(0)
    pwm = rng.dirichlet(np.ones(4), 5)
    codes = rng.integers(0, 4, (3, 2, 40)).astype(np.uint8)
    out = scan_max(codes, pwm)
    assert out.shape == (3, 2)
    assert np.allclose(out, [[_oracle_scan_max(c, pwm) for c in row] for row in codes])
    assert scan_scores(codes, log_odds(pwm)).shape == (3, 2, 36)
    soft = np.full((1, 10, 4), 0.25)  # uniform soft one-hot: each position scores the row mean
    expected = log_odds(pwm).mean(axis=1).sum()
    assert scan_max(soft, pwm)[0] == pytest.approx(expected)
    assert scan_max(codes[:, :, :3], pwm).tolist() == [[-np.inf] * 2] * 3  # shorter than the motif
