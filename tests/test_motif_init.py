"""-mo: canonical motifs start in pairs of first-layer kernels; a missing motif only warns; the
motif is the one FactorNet's load_motif_db would key by the TF name (last MOTIF word, last wins)."""
import numpy as np

from factornet_jax.train_config import TrainConfig
from factornet_jax.meme import Motif, write_meme
from factornet_jax.model import ModelConfig, init_params, motif_kernel
from factornet_jax.training import _inject_motifs


def test_each_tf_motif_goes_into_its_kernel_pair(tmp_path):
    pwm_a = np.eye(4)[[0, 1, 2, 3, 3, 2]] * 0.97 + 0.0075
    pwm_b = np.eye(4)[[2, 2, 0, 1, 1]] * 0.97 + 0.0075
    decoy = np.full((6, 4), 0.25)
    write_meme(tmp_path / "db.meme", [Motif("TFA_f1", "TFA", decoy), Motif("TFA_f2", "tfa", pwm_a),
                                      Motif("NOPE_HUMAN", None, decoy), Motif("TFB", None, pwm_b)])
    cfg = ModelConfig(seq_len=100, track_names=("DGF",), num_tasks=3, kernels=5, kernel_width=8,
                      recurrent=2, dense=4)
    params = init_params(cfg, 0)
    config = TrainConfig(inputs=("x",), motif=True, motif_db=str(tmp_path / "db.meme"))
    messages = []
    out = _inject_motifs(params, config, ["TFA", "NOPE", "TFB"], lambda m, **k: messages.append(m))
    kernel = np.asarray(out["conv"]["kernel"])
    np.testing.assert_allclose(kernel[:, :4, 0], motif_kernel(pwm_a, 8))
    np.testing.assert_allclose(kernel[:, :4, 1], motif_kernel(pwm_a[::-1, ::-1], 8))
    assert np.all(kernel[:, 4:, :2] == 0)                       # signal channels cleared
    np.testing.assert_array_equal(kernel[:, :, 2:4], np.asarray(params["conv"]["kernel"])[:, :, 2:4])
    # TFB would need kernels 4 and 5: only 5 kernels, so it is not injected
    np.testing.assert_array_equal(kernel[:, :, 4], np.asarray(params["conv"]["kernel"])[:, :, 4])
    assert any("no motif named NOPE" in m for m in messages)   # NOPE_HUMAN is not NOPE


def test_motif_extra_fills_the_next_kernel_pairs_and_refuses_what_cannot_be_placed(tmp_path):
    """--motif-extra: named motifs (e.g. a co-factor) go into the kernel pairs after the TFs',
    in the order given; an unknown name or no free pair is a ConfigError naming the flag."""
    import pytest

    from factornet_jax.errors import ConfigError
    pwm_tf = np.eye(4)[[0, 1, 2, 3, 3, 2]] * 0.97 + 0.0075
    pwm_cof = np.eye(4)[[1, 1, 3, 0, 2]] * 0.97 + 0.0075
    pwm_other = np.eye(4)[[3, 3, 0, 0]] * 0.97 + 0.0075
    write_meme(tmp_path / "db.meme", [Motif("TFA", None, pwm_tf), Motif("ZN143_si", "ZNF143", pwm_cof),
                                      Motif("OTHER_f1", "OTHER", pwm_other)])
    cfg = ModelConfig(seq_len=100, track_names=("DGF",), num_tasks=1, kernels=6, kernel_width=8,
                      recurrent=2, dense=4)
    params = init_params(cfg, 0)
    config = TrainConfig(inputs=("x",), motif=True, motif_db=str(tmp_path / "db.meme"),
                         motif_extra=("ZNF143", "OTHER"))
    out = _inject_motifs(params, config, ["TFA"], lambda m, **k: None)
    kernel = np.asarray(out["conv"]["kernel"])
    np.testing.assert_allclose(kernel[:, :4, 0], motif_kernel(pwm_tf, 8))
    np.testing.assert_allclose(kernel[:, :4, 2], motif_kernel(pwm_cof, 8))
    np.testing.assert_allclose(kernel[:, :4, 3], motif_kernel(pwm_cof[::-1, ::-1], 8))
    np.testing.assert_allclose(kernel[:, :4, 4], motif_kernel(pwm_other, 8))
    np.testing.assert_allclose(kernel[:, :4, 5], motif_kernel(pwm_other[::-1, ::-1], 8))
    assert np.all(kernel[:, 4:, 2:] == 0)
    with pytest.raises(ConfigError, match="--motif-extra NOPE: no such motif"):
        _inject_motifs(params, TrainConfig(inputs=("x",), motif=True, motif_db=str(tmp_path / "db.meme"),
                                           motif_extra=("NOPE",)), ["TFA"], lambda m, **k: None)
    with pytest.raises(ConfigError, match="--motif-extra OTHER: no kernel pair left"):
        _inject_motifs(params, TrainConfig(inputs=("x",), motif=True, motif_db=str(tmp_path / "db.meme"),
                                           motif_extra=("ZNF143", "OTHER", "OTHER")), ["TFA"],
                       lambda m, **k: None)
    with pytest.raises(ConfigError, match="--motif-extra needs -mo"):
        TrainConfig(inputs=("x",), motif_extra=("ZNF143",))
