import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tetrad.core.distributed import init_distributed, resolve_device
from tetrad.core.errors import UserError


def test_auto_is_cuda_when_there_is_one_and_named_devices_are_checked():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert init_distributed("cpu").device == torch.device("cpu")
    for name, message in [("gpu0", "unknown torch device 'gpu0'"), ("banana", "unknown torch device 'banana'"),
                          ("meta", "only cpu, cuda"), (f"cuda:{max(torch.cuda.device_count(), 1) + 2}", "CUDA device")]:
        with pytest.raises(UserError, match=message):
            resolve_device(name)
        with pytest.raises(UserError, match=message):
            init_distributed(name)


def test_a_ranking_run_on_a_device_that_does_not_exist_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-c", "from tetrad.cli import main; main()", "ranking", "train",
                          "--config", "configs/ranking/mtmixatt_tiny.yaml", f"root={tmp_path}", "device=banana"],
                         capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "banana" in out.stderr.strip().splitlines()[-1]
