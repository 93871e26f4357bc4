import numpy as np
import pytest
import torch

from tetrad.core.errors import UserError
from tetrad.data.catalogue import make_catalogue
from tetrad.semantic_ids.quantizers import (BalancedRQKMeans, RQKMeans, RQVAE, balanced_assign, collision_suffix,
                                            load_quantizer, rotation_trick, save_quantizer)


@pytest.fixture(scope="module")
def emb():
    return make_catalogue(items=4000, dim=32, top_clusters=16, sub_clusters=8, users=10, seed=0).embeddings


def rel_error(x, r):
    return float(((x - r) ** 2).sum() / (x**2).sum())


def test_rq_kmeans_each_layer_reduces_error_and_encode_matches_fit(emb):
    errors = []
    for layers in (1, 2, 3):
        q = RQKMeans(layers, 32, seed=0)
        codes = q.fit_encode(emb)
        assert codes.shape == (len(emb), layers) and codes.dtype == np.int64
        np.testing.assert_array_equal(q.encode(emb), codes)  # nearest-centroid encode = the fitted assignment
        errors.append(rel_error(emb, q.decode(codes)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.5


def test_balanced_layers_hold_equal_cluster_sizes(emb):
    q = BalancedRQKMeans(3, 32, niter=5, seed=0)
    codes = q.fit_encode(emb)
    for layer in range(3):
        counts = np.bincount(codes[:, layer], minlength=32)
        assert counts.max() - counts.min() <= 1  # 4000 / 32 = 125 each
    plain = RQKMeans(3, 32, seed=0).fit_encode(emb)
    assert np.bincount(plain[:, 1]).std() > 10 * np.bincount(codes[:, 1], minlength=32).std()
    assert rel_error(emb, q.decode(codes)) < 1.0


def test_balanced_assign_prefers_near_centroids():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 10.0]])
    x = np.concatenate([rng.normal(0, 0.1, (50, 2)), rng.normal(10, 0.1, (50, 2))])
    assign = balanced_assign(x, centres, rng)
    np.testing.assert_array_equal(assign, np.repeat([0, 1], 50))


def test_rotation_trick_forward_is_e_and_gradient_rotates():
    e = torch.tensor([[0.0, 2.0]])
    r = torch.tensor([[1.0, 0.0]], requires_grad=True)
    q = rotation_trick(r, e)
    torch.testing.assert_close(q, e)
    # d q / d r = (|e|/|r|) R, R rotating x to y; upstream gradient (0, 1) maps to 2 * (1, 0)
    q.backward(torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(r.grad, torch.tensor([[2.0, 0.0]]))
    r2 = torch.tensor([[1.0, 0.0]], requires_grad=True)
    (r2 + (e - r2).detach()).backward(torch.tensor([[0.0, 1.0]]))  # straight-through copies the gradient
    torch.testing.assert_close(r2.grad, torch.tensor([[0.0, 1.0]]))


def test_rq_vae_trains_and_dead_code_reset_raises_utilisation(emb):
    kw = dict(layers=2, codebook_size=32, latent_dim=16, hidden=(64,), steps=150, batch_size=256, seed=0)
    with_reset = RQVAE(kmeans_init=False, dead_code_window=20, **kw).fit(emb)
    without = RQVAE(kmeans_init=False, dead_code_window=0, **kw).fit(emb)
    used = lambda q: len(np.unique(q.encode(emb)[:, 0]))  # noqa: E731
    assert used(with_reset) > used(without)
    assert sum(h["resets"] for h in with_reset.history) > 0
    losses = [h["recon"] for h in with_reset.history]
    assert np.mean(losses[-20:]) < np.mean(losses[:20])


def test_rq_vae_kmeans_init_starts_with_every_code_used(emb):
    q = RQVAE(layers=2, codebook_size=32, latent_dim=16, hidden=(64,), steps=1, batch_size=2000, seed=0).fit(emb)
    assert len(np.unique(q.encode(emb)[:, 0])) >= 28


@pytest.mark.parametrize("make", [lambda: RQKMeans(2, 16, seed=1), lambda: BalancedRQKMeans(2, 16, niter=3),
                                  lambda: RQVAE(2, 16, latent_dim=8, hidden=(32,), steps=20, gradient="ste")])
def test_save_load_round_trip(emb, make, tmp_path):
    q = make().fit(emb)
    save_quantizer(q, tmp_path / "q.pt")
    again = load_quantizer(tmp_path / "q.pt")
    np.testing.assert_array_equal(again.encode(emb[:100]), q.encode(emb[:100]))
    np.testing.assert_allclose(again.decode(q.encode(emb[:10])), q.decode(q.encode(emb[:10])), rtol=1e-5)


def test_bad_input_is_one_clear_error(emb, tmp_path):
    bad = emb.copy()
    bad[3, 0] = np.nan
    with pytest.raises(UserError, match="NaN or inf in 1 row"):
        RQKMeans(2, 16).fit(bad)
    q = RQKMeans(2, 16).fit(emb)
    with pytest.raises(UserError, match="dimension 8 but the quantizer was fitted on dimension 32"):
        q.encode(emb[:, :8])
    with pytest.raises(UserError, match="fewer than the codebook size 256"):
        RQKMeans(2, 256).fit(emb[:100])
    with pytest.raises(UserError, match="not fitted"):
        RQVAE().encode(emb)
    with pytest.raises(UserError, match="not found"):
        load_quantizer(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(UserError, match="not a saved tetrad quantizer"):
        load_quantizer(tmp_path / "junk.pt")


def test_collision_suffix_numbers_items_sharing_a_path():
    codes = np.array([[1, 2], [1, 2], [0, 1], [1, 2], [0, -1], [0, -1]])
    np.testing.assert_array_equal(collision_suffix(codes), [0, 1, 0, 2, 0, 1])
