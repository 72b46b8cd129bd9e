"""TF-MoDISco + TOMTOM on contributions (factornet_jax.motif_discovery): a motif planted in the
contributions comes back as a pattern whose best TOMTOM hit is that motif; the files written;
the one-line error without the optional extra."""
import sys

import numpy as np
import pytest

from factornet_jax.errors import ConfigError


def test_trim_keeps_the_span_of_strong_columns():
    from factornet_jax.motif_discovery import trim_by
    pwm = np.arange(24).reshape(6, 4)
    assert trim_by([0.1, 1.0, 0.2, 0.5, 0.1, 0.0], pwm).tolist() == pwm[1:4].tolist()
    assert trim_by([0.0] * 6, pwm).shape == (6, 4)          # nothing to trim by: kept whole


@pytest.mark.parametrize("package", ["modiscolite", "memelite"])
def test_missing_extra_is_one_line_naming_it(monkeypatch, package):
    from factornet_jax.motif_discovery import require_packages
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(ConfigError, match=rf"{package}: install factornet-jax\[motifs\]") as info:
        require_packages()
    assert "\n" not in str(info.value)


def planted_contributions(motif, n=120, seq_len=160, seed=0):
    """Random sequences, each with one instance of `motif` (half on the reverse strand), and
    hypothetical contributions: small noise plus 0.3 x the motif's log-odds over the instance
    (the contribution a model that learnt the motif would give)."""
    from factornet_jax.meme import log_odds
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (n, seq_len))
    width = motif.width
    weights = log_odds(motif.pwm)
    hyp = rng.normal(0, 0.02, (n, seq_len, 4)).astype(np.float32)
    for i in range(n):
        site = np.array([rng.choice(4, p=row) for row in motif.pwm])
        at = int(rng.integers(20, seq_len - width - 20))
        if i % 2:
            codes[i, at:at + width] = 3 - site[::-1]
            hyp[i, at:at + width] += 0.3 * weights[::-1, ::-1]
        else:
            codes[i, at:at + width] = site
            hyp[i, at:at + width] += 0.3 * weights
    return hyp, np.eye(4, dtype=np.uint8)[codes]


@pytest.fixture(scope="module")
def discovered(tmp_path_factory):
    pytest.importorskip("modiscolite")
    pytest.importorskip("memelite")
    from factornet_jax.meme import find_motif
    from factornet_jax.motif_discovery import discover_and_match, load_database
    database = load_database()
    ctcf = find_motif(database[1], "CTCF")
    hyp, onehot = planted_contributions(ctcf)
    folder = tmp_path_factory.mktemp("motifs") / "motifs"
    n = discover_and_match(hyp, hyp * onehot, onehot, database, folder)
    return {"folder": folder, "n": n, "ctcf": ctcf}


def test_planted_motif_is_the_best_tomtom_hit_of_a_pattern(discovered):
    lines = (discovered["folder"] / "matches.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert discovered["n"] >= 1 and header[:5] == ["pattern", "sign", "seqlets", "rank", "motif"]
    best = [r for r in rows if r["rank"] == "1"]
    hit = [r for r in best if r["motif"] == discovered["ctcf"].name]
    assert hit and float(hit[0]["q_value"]) < 1e-6 and int(hit[0]["seqlets"]) >= 30
    # the runner-up is no match: TOMTOM tells the planted motif apart
    second = [r for r in rows if r["pattern"] == hit[0]["pattern"] and r["rank"] == "2"]
    assert float(second[0]["q_value"]) > 1e-3


def test_patterns_are_written_as_meme_and_logos(discovered):
    from factornet_jax.meme import read_meme
    patterns = read_meme(discovered["folder"] / "patterns.meme")
    assert len(patterns) == discovered["n"]
    for motif in patterns:
        np.testing.assert_allclose(motif.pwm.sum(axis=1), 1.0, atol=1e-3)
        png = discovered["folder"] / "logos" / f"{motif.name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
