import pytest

from tetrad.agents.alfworld_games import make_games


@pytest.fixture(scope="session")
def alfworld_games(tmp_path_factory):
    """One verified game of each of the six task types (train split, seed 0) and the rejections."""
    root = tmp_path_factory.mktemp("alfworld")
    stats: dict[str, int] = {}
    folders = make_games(root, 6, split="train", seed=0, stats=stats)
    return root, folders, stats
