"""Residual quantizers that turn item embeddings into semantic-ID code paths.

Every quantizer has one interface:

    q = RQKMeans(layers=3, codebook_size=256, seed=0).fit(x)   # x: items x dim, float
    codes = q.encode(x)                                          # items x layers, int64
    recon = q.decode(codes)                                      # items x dim

- `RQKMeans`: faiss k-means on the residual, layer by layer (TIGER/GRID/MiniOneRec practice).
- `BalancedRQKMeans`: the same, but every cluster of a layer holds N/K items (OneRec's
  balanced residual k-means): each iteration visits the clusters in random order and lets
  each take its nearest `ceil` or `floor` of N/K still-unassigned items, then re-centres.
- `RQVAE`: MLP encoder/decoder around a residual VQ in latent space, trained with
  reconstruction + codebook + commitment loss; codebooks start from k-means of the first
  batch's residuals, codes unused for `dead_code_window` steps are reset to random
  residuals of the current batch, and gradients pass the quantizer by straight-through or
  by the rotation trick (Fifty et al., 2024).

`collision_suffix(codes)` numbers items that share a path (TIGER's extra token).
Bad input (NaN or inf, wrong dimension, fewer items than a codebook) is a `UserError`.
"""

from __future__ import annotations

import math
import os
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tetrad.core.errors import UserError


def check_embeddings(x, dim: int | None = None, min_items: int = 1, what: str = "embeddings") -> np.ndarray:
    """`x` as a C-contiguous float32 items x dim array, or a `UserError` saying what is wrong."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise UserError(f"{what} must be a 2-D items x dim array (got shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"{what} must be numeric (got dtype {x.dtype})")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(1).sum())
        raise UserError(f"{what} hold NaN or inf in {bad} row{'s' if bad > 1 else ''}")
    if dim is not None and x.shape[1] != dim:
        raise UserError(f"{what} have dimension {x.shape[1]} but the quantizer was fitted on dimension {dim}")
    if len(x) < min_items:
        raise UserError(f"{what}: {len(x)} items are fewer than the codebook size {min_items}")
    return x


def _check_codes(codes, layers: int, codebook_size: int) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != layers:
        raise UserError(f"codes must be items x {layers} (got shape {codes.shape})")
    if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
        raise UserError(f"codes must lie in [0, {codebook_size})")
    return codes.astype(np.int64)


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (L2) for each row, by faiss's exact search."""
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index.search(np.ascontiguousarray(x, dtype=np.float32), 1)[1][:, 0].astype(np.int64)


class _CentroidRQ:
    """Shared encode/decode/save of quantizers that hold one centroid table per layer."""

    kind = ""

    def __init__(self, layers: int = 3, codebook_size: int = 256, niter: int = 20, seed: int = 0):
        if layers < 1 or codebook_size < 2:
            raise UserError("a residual quantizer needs layers >= 1 and codebook_size >= 2")
        self.layers, self.codebook_size, self.niter, self.seed = layers, codebook_size, niter, seed
        self.centroids: np.ndarray | None = None  # layers x K x dim

    @property
    def dim(self) -> int:
        self._require_fitted()
        return self.centroids.shape[2]

    def _require_fitted(self) -> None:
        if self.centroids is None:
            raise UserError(f"{type(self).__name__} is not fitted: call fit() or load a saved one")

    def fit(self, x) -> "_CentroidRQ":
        x = check_embeddings(x, min_items=self.codebook_size)
        residual = x.copy()
        tables, assigns = [], []
        for layer in range(self.layers):
            centroids, assign = self._fit_layer(residual, seed=self.seed + layer)
            tables.append(centroids)
            assigns.append(assign)
            residual -= centroids[assign]
        self.centroids = np.stack(tables)
        self.fit_codes = np.stack(assigns, 1)
        return self

    def fit_encode(self, x) -> np.ndarray:
        """Codes of the fitted items as assigned while fitting (balanced ones stay balanced)."""
        return self.fit(x).fit_codes

    def encode(self, x) -> np.ndarray:
        self._require_fitted()
        residual = check_embeddings(x, dim=self.dim).copy()
        codes = np.empty((len(residual), self.layers), dtype=np.int64)
        for layer, centroids in enumerate(self.centroids):
            codes[:, layer] = nearest(residual, centroids)
            residual -= centroids[codes[:, layer]]
        return codes

    def decode(self, codes) -> np.ndarray:
        self._require_fitted()
        codes = _check_codes(codes, self.layers, self.codebook_size)
        return sum(self.centroids[layer][codes[:, layer]] for layer in range(self.layers))

    def state(self) -> dict:
        self._require_fitted()
        return {"kind": self.kind, "layers": self.layers, "codebook_size": self.codebook_size,
                "niter": self.niter, "seed": self.seed, "centroids": torch.from_numpy(self.centroids)}

    def _fit_layer(self, residual: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class RQKMeans(_CentroidRQ):
    """Residual k-means: `faiss.Kmeans` on the residual left by the previous layers."""

    kind = "rq_kmeans"

    def _fit_layer(self, residual, seed):
        import faiss

        km = faiss.Kmeans(residual.shape[1], self.codebook_size, niter=self.niter, seed=seed,
                          max_points_per_centroid=max(256, math.ceil(len(residual) / self.codebook_size)))
        km.train(residual)
        centroids = km.centroids.astype(np.float32)
        return centroids, nearest(residual, centroids)


def balanced_assign(x: np.ndarray, centroids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Assign rows to centroids so every centroid gets floor(N/K) or ceil(N/K) rows.

    Clusters take turns in random order; each claims its nearest still-unassigned rows.
    """
    n, k = len(x), len(centroids)
    sizes = np.full(k, n // k)
    sizes[rng.permutation(k)[: n % k]] += 1
    dist = ((x**2).sum(1)[:, None] - 2 * x @ centroids.T + (centroids**2).sum(1)[None, :])
    assign = np.full(n, -1, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    for c in rng.permutation(k):
        candidates = np.flatnonzero(free)
        take = candidates[np.argpartition(dist[candidates, c], sizes[c] - 1)[: sizes[c]]]
        assign[take] = c
        free[take] = False
    return assign


class BalancedRQKMeans(_CentroidRQ):
    """Residual k-means whose clusters each hold N/K items (balanced assignment while fitting;
    new items at `encode` go to their nearest centroid)."""

    kind = "balanced_rq_kmeans"

    def _fit_layer(self, residual, seed):
        rng = np.random.default_rng(seed)
        centroids = residual[rng.choice(len(residual), self.codebook_size, replace=False)].copy()
        for _ in range(self.niter):
            assign = balanced_assign(residual, centroids, rng)
            sums = np.zeros_like(centroids)
            np.add.at(sums, assign, residual)
            centroids = sums / np.bincount(assign, minlength=self.codebook_size)[:, None]
        return centroids.astype(np.float32), balanced_assign(residual, centroids, rng)


# ---- RQ-VAE ---------------------------------------------------------------------------------------


def rotation_trick(r: torch.Tensor, e: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Quantized output `e` in the forward pass whose gradient w.r.t. `r` is a rotation + scaling.

    Fifty et al. (2024): q = sg[(|e| / |r|) R] r with R the rotation taking r/|r| to e/|e|,
    written without forming R: R r = r - 2 (w.r) w + 2 (r_hat.r) e_hat, w = (r_hat + e_hat) / |.|.
    """
    r_norm = r.norm(dim=-1, keepdim=True).clamp_min(eps)
    e_norm = e.norm(dim=-1, keepdim=True).clamp_min(eps)
    r_hat, e_hat = (r / r_norm).detach(), (e / e_norm).detach()
    w = F.normalize(r_hat + e_hat, dim=-1, eps=eps)
    rotated = r - 2 * (r * w).sum(-1, keepdim=True) * w + 2 * (r * r_hat).sum(-1, keepdim=True) * e_hat
    return (e_norm / r_norm).detach() * rotated


class ResidualVQ(nn.Module):
    """Residual vector quantizer over `layers` codebooks of `codebook_size` vectors."""

    def __init__(self, layers: int, codebook_size: int, dim: int,
                 gradient: Literal["ste", "rotation"] = "ste", commitment: float = 0.25):
        super().__init__()
        self.codebooks = nn.Parameter(torch.randn(layers, codebook_size, dim) * 0.01)
        self.gradient, self.commitment = gradient, commitment

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(quantized z with the chosen gradient, codes, codebook+commitment loss, residual per layer)."""
        residual, out = z, torch.zeros_like(z)
        codes, residuals, loss = [], [], z.new_zeros(())
        for book in self.codebooks:
            residuals.append(residual.detach())
            code = torch.cdist(residual.detach(), book.detach()).argmin(1)
            e = book[code]
            loss = loss + F.mse_loss(e, residual.detach()) + self.commitment * F.mse_loss(residual, e.detach())
            q = rotation_trick(residual, e.detach()) if self.gradient == "rotation" else \
                residual + (e - residual).detach()
            out = out + q
            residual = residual - e.detach()
            codes.append(code)
        return out, torch.stack(codes, 1), loss, residuals


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class RQVAE:
    """RQ-VAE tokenizer (TIGER): encoder MLP -> residual VQ -> decoder MLP, trained on embeddings.

    Loss = MSE(reconstruction) + sum over layers of |sg[r] - e|^2 + beta |r - sg[e]|^2.
    """

    kind = "rq_vae"

    def __init__(self, layers: int = 3, codebook_size: int = 256, latent_dim: int = 32,
                 hidden: tuple[int, ...] = (256, 128), steps: int = 2000, batch_size: int = 1024,
                 lr: float = 1e-3, commitment: float = 0.25, gradient: Literal["ste", "rotation"] = "rotation",
                 kmeans_init: bool = True, dead_code_window: int = 100, seed: int = 0):
        if gradient not in ("ste", "rotation"):
            raise UserError(f"RQ-VAE gradient must be 'ste' or 'rotation' (got '{gradient}')")
        if layers < 1 or codebook_size < 2:
            raise UserError("a residual quantizer needs layers >= 1 and codebook_size >= 2")
        self.layers, self.codebook_size, self.latent_dim, self.hidden = layers, codebook_size, latent_dim, hidden
        self.steps, self.batch_size, self.lr, self.commitment = steps, batch_size, lr, commitment
        self.gradient, self.kmeans_init, self.dead_code_window, self.seed = gradient, kmeans_init, dead_code_window, seed
        self.dim: int | None = None
        self.encoder = self.decoder = self.rvq = None
        self.history: list[dict] = []  # per-step loss and dead-code resets

    def _build(self, dim: int) -> None:
        self.dim = dim
        self.encoder = _mlp([dim, *self.hidden, self.latent_dim])
        self.decoder = _mlp([self.latent_dim, *reversed(self.hidden), dim])
        self.rvq = ResidualVQ(self.layers, self.codebook_size, self.latent_dim, self.gradient, self.commitment)

    def _modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.encoder, self.decoder, self.rvq])

    def _require_fitted(self) -> None:
        if self.encoder is None:
            raise UserError("RQVAE is not fitted: call fit() or load a saved one")

    def fit(self, x) -> "RQVAE":
        x = torch.from_numpy(check_embeddings(x, min_items=self.codebook_size))
        gen = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self._build(x.shape[1])
        opt = torch.optim.Adam(self._modules().parameters(), lr=self.lr)
        batch = min(self.batch_size, len(x))
        last_used = torch.zeros(self.layers, self.codebook_size, dtype=torch.long)
        self.history = []
        for step in range(1, self.steps + 1):
            xb = x[torch.randint(0, len(x), (batch,), generator=gen)]
            if step == 1 and self.kmeans_init:
                self._kmeans_init(self.encoder(xb).detach())
            z = self.encoder(xb)
            zq, codes, vq_loss, residuals = self.rvq.quantize(z)
            recon = F.mse_loss(self.decoder(zq), xb)
            loss = recon + vq_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            for layer in range(self.layers):
                last_used[layer, codes[:, layer].unique()] = step
            resets = self._reset_dead_codes(step, last_used, residuals, gen) if self.dead_code_window else 0
            self.history.append({"step": step, "loss": loss.item(), "recon": recon.item(), "resets": resets})
        return self

    @torch.no_grad()
    def _kmeans_init(self, z: torch.Tensor) -> None:
        residual = z.numpy().copy()
        for layer in range(self.layers):
            km = RQKMeans(1, self.codebook_size, niter=10, seed=self.seed + layer)
            centroids, assign = km._fit_layer(residual, seed=self.seed + layer)
            self.rvq.codebooks[layer].copy_(torch.from_numpy(centroids))
            residual -= centroids[assign]

    @torch.no_grad()
    def _reset_dead_codes(self, step: int, last_used: torch.Tensor, residuals: list[torch.Tensor],
                          gen: torch.Generator) -> int:
        """Codes unused for `dead_code_window` steps move onto random residuals of this batch."""
        resets = 0
        for layer in range(self.layers):
            dead = (step - last_used[layer]) >= self.dead_code_window
            n = int(dead.sum())
            if n:
                pool = residuals[layer]
                self.rvq.codebooks[layer][dead] = pool[torch.randint(0, len(pool), (n,), generator=gen)]
                last_used[layer, dead] = step
                resets += n
        return resets

    @torch.no_grad()
    def encode(self, x) -> np.ndarray:
        self._require_fitted()
        x = torch.from_numpy(check_embeddings(x, dim=self.dim))
        return torch.cat([self.rvq.quantize(self.encoder(xb))[1] for xb in x.split(65536)]).numpy()

    def fit_encode(self, x) -> np.ndarray:
        return self.fit(x).encode(x)

    @torch.no_grad()
    def decode(self, codes) -> np.ndarray:
        self._require_fitted()
        codes = torch.from_numpy(_check_codes(codes, self.layers, self.codebook_size))
        z = sum(self.rvq.codebooks[layer][codes[:, layer]] for layer in range(self.layers))
        return self.decoder(z).numpy()

    def state(self) -> dict:
        self._require_fitted()
        return {"kind": self.kind, "layers": self.layers, "codebook_size": self.codebook_size,
                "latent_dim": self.latent_dim, "hidden": list(self.hidden), "gradient": self.gradient,
                "commitment": self.commitment, "seed": self.seed, "dim": self.dim,
                "weights": self._modules().state_dict()}


Quantizer = RQKMeans | BalancedRQKMeans | RQVAE
KINDS = {"rq_kmeans": RQKMeans, "balanced_rq_kmeans": BalancedRQKMeans, "rq_vae": RQVAE}


def make_quantizer(kind: str, **kwargs) -> Quantizer:
    if kind not in KINDS:
        raise UserError(f"unknown quantizer '{kind}' (known: {', '.join(KINDS)})")
    return KINDS[kind](**kwargs)


def save_quantizer(q: Quantizer, path: str | os.PathLike) -> None:
    from tetrad.core.io import atomic_write

    state = q.state()
    atomic_write(path, lambda f: torch.save(state, f))


def load_quantizer(path: str | os.PathLike) -> Quantizer:
    from tetrad.core.errors import require_file

    try:
        state = torch.load(require_file(path, "quantizer file"), weights_only=True)
        kind = state["kind"]
    except UserError:
        raise
    except Exception:
        raise UserError(f"{path} is not a saved tetrad quantizer") from None
    if kind == "rq_vae":
        q = RQVAE(layers=state["layers"], codebook_size=state["codebook_size"], latent_dim=state["latent_dim"],
                  hidden=tuple(state["hidden"]), gradient=state["gradient"], commitment=state["commitment"],
                  seed=state["seed"])
        q._build(state["dim"])
        q._modules().load_state_dict(state["weights"])
        return q
    q = KINDS[kind](layers=state["layers"], codebook_size=state["codebook_size"], niter=state["niter"],
                    seed=state["seed"])
    q.centroids = state["centroids"].numpy()
    return q


def collision_suffix(codes) -> np.ndarray:
    """For each item, its index among the items that share its code path (0 for the first).

    TIGER appends this as an extra token so every item's ID is unique. Rows may hold -1 for
    positions a fix removed; equal rows (including their -1s) collide.
    """
    codes = np.asarray(codes)
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    sorted_groups = inverse[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    suffix = np.empty(len(codes), dtype=np.int64)
    suffix[order] = np.arange(len(order)) - group_start
    return suffix
