import pytest

from tetrad.data.ctr_synthetic import SyntheticCTRConfig, generate
from tetrad.ranking.data import select_features


@pytest.fixture(scope="session")
def small_log(tmp_path_factory):
    """A small synthetic log shared by the ranking tests (6,000 rows, 3 scenarios)."""
    out = tmp_path_factory.mktemp("ranking-log")
    schema = generate(out, SyntheticCTRConfig(rows=6_000, users=120, items=400, seed=7))
    return out, schema, select_features(schema)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP threads that spin-wait for a busy
    core make steps many times slower than a single thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
