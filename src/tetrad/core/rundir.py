"""Run directories: `runs/<system>/<name>/` with config, metrics, summary, plots, checkpoints.

    config.yaml      the validated config the run used
    metrics.jsonl    one JSON object per logged step ({"step": ..., metric: value, ...})
    summary.json     final metrics, written atomically
    plots/           figures
    checkpoints/     see `tetrad.core.checkpoint`
    events.out.tfevents.*   TensorBoard scalars mirroring metrics.jsonl

Only rank 0 writes. Starting a run over an existing one without `resume=true` is a
`UserError`, so no result is overwritten by accident.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from tetrad.core.checkpoint import Checkpointer
from tetrad.core.config import RunConfig, config_to_yaml
from tetrad.core.distributed import barrier, is_main
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json, atomic_write_text


class RunDir:
    def __init__(self, system: str, cfg: RunConfig, *, keep_checkpoints: int = 2, tensorboard: bool = True):
        self.path = Path(cfg.root) / system / cfg.name
        self.plots = self.path / "plots"
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpointer = Checkpointer(self.path / "checkpoints", keep=keep_checkpoints)
        self._tensorboard = tensorboard
        self._writer = None
        self._purge_step: int | None = None
        finished = (self.path / "summary.json").exists()
        if not cfg.resume and (finished or self.metrics_path.exists() or self.checkpointer.steps()):
            raise UserError(f"run directory {self.path} already holds a run: pass resume=true to continue it "
                            f"or name=<new name> to start another")
        if is_main():
            self.plots.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path / "config.yaml", config_to_yaml(cfg))
        barrier()

    def restore(self, resume: bool, **objects) -> dict[str, Any]:
        """Where the run begins: `{"step", "state"}`.

        With `resume`, the latest checkpoint is loaded into `objects` (model=, optimizer=,
        scheduler=) and metrics logged after it are forgotten; a resumed run that never reached
        its first checkpoint restarts from step 0 with its metrics cleared, so nothing is logged
        twice. Without `resume`, step 0.
        """
        if not resume:
            return {"step": 0, "state": {}}
        if self.checkpointer.latest() is None:
            self.rewind(-1)
            return {"step": 0, "state": {}}
        checkpoint = self.checkpointer.load(**objects)
        self.rewind(checkpoint["step"])
        return checkpoint

    def rewind(self, step: int) -> None:
        """Forget metrics logged after `step` (called when resuming from a checkpoint at `step`)."""
        self._purge_step = step + 1
        if is_main() and self.metrics_path.exists():
            kept = [line for line in self.metrics_path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", -1) <= step]
            atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one metrics record (and its numeric values to TensorBoard)."""
        if not is_main():
            return
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tensorboard:
            writer = self._tb()
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    writer.add_scalar(k, v, step)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def write_summary(self, summary: dict[str, Any]) -> None:
        if is_main():
            atomic_write_json(self.path / "summary.json", summary)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _tb(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: slow, so lazily

            self._writer = SummaryWriter(log_dir=str(self.path), purge_step=self._purge_step)
        return self._writer

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def finished_summary(system: str, cfg: RunConfig) -> dict[str, Any] | None:
    """The summary of a finished run of exactly this config, or None if it has not finished.

    For commands that reuse finished runs (comparisons over seeds and variants): a finished run
    made with other settings is a `UserError`, so its numbers are never reported under new ones.
    """
    path = Path(cfg.root) / system / cfg.name
    if not (path / "summary.json").is_file():
        return None
    saved = yaml.safe_load((path / "config.yaml").read_text()) if (path / "config.yaml").is_file() else None
    now = cfg.model_dump(mode="json")
    if not isinstance(saved, dict) or _without_resume(saved) != _without_resume(now):
        raise UserError(f"run {path} finished with other settings: delete it or choose another name or prefix")
    return json.loads((path / "summary.json").read_text())


def _without_resume(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "resume"}


def _plain(v: Any) -> Any:
    """Tensors and NumPy scalars as plain Python numbers for JSON."""
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    return v
