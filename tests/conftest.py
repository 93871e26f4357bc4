import os

import pytest
import torch

# Progress bars and TensorBoard stay quiet in tests, as in CI.
os.environ.setdefault("CI", "1")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread than on two contending with other jobs on a shared machine
    (measured: a 4-epoch test run 6.4 s vs 11.0 s); the thread count is put back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
