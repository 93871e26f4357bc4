import pytest

from tetrad.data.ctr_synthetic import SyntheticCTRConfig, generate
from tetrad.ranking.data import select_features


@pytest.fixture(scope="session")
def small_log(tmp_path_factory):
    """A small synthetic log shared by the ranking tests (6,000 rows, 3 scenarios)."""
    out = tmp_path_factory.mktemp("ranking-log")
    schema = generate(out, SyntheticCTRConfig(rows=6_000, users=120, items=400, seed=7))
    return out, schema, select_features(schema)
