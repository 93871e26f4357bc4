"""Run directories: `runs/<system>/<name>/` with config, metrics, summary, plots, checkpoints.

    config.yaml      the validated config the run used
    metrics.jsonl    one JSON object per logged step ({"step": ..., metric: value, ...})
    summary.json     final metrics, written atomically
    plots/           figures
    checkpoints/     see `tetrad.core.checkpoint`
    events.out.tfevents.*   TensorBoard scalars mirroring metrics.jsonl

Only rank 0 writes. The rules that keep a run's directory its own and its resume trustworthy:

- the name is a plain folder name (no `/`, not `..`), so nothing lands outside `<root>/<system>/`;
- rank 0 holds an exclusive lock on `.lock` while the run lives, so a second process on the same
  run fails with one line instead of interleaving its metrics and checkpoints;
- starting over an existing run without `resume=true` is a `UserError`, so no result is
  overwritten by accident, and `resume=true` with settings other than the saved `config.yaml`'s
  (`resume`, `root` and `name` aside: where the run lives, not what it computes) is refused,
  naming the keys, so a run never continues with values it did not start with;
- on resume, metrics logged after the checkpoint are forgotten (exactly those: the checkpoint
  records how many lines there were), a last line cut short by a crash is dropped, a corrupt
  latest checkpoint falls back to the one before it, and temporaries of interrupted atomic
  writes are removed;
- a folder or file the operating system refuses to make is a `UserError` naming the path.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import IO, Any, Callable

import yaml

from tetrad.core.checkpoint import Checkpointer
from tetrad.core.config import RunConfig, config_to_yaml, plain_name
from tetrad.core.distributed import barrier, is_main
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json, atomic_write_text, remove_stale_temporaries

# top-level keys that say where a run lives, not what it computes: a resumed (or reused) run may
# differ in them (a run directory moved or copied under another name)
LOCATION_KEYS = ("resume", "root", "name")


class RunDir:
    """`restart=True`: an unfinished earlier attempt under this name is discarded and the run starts
    over whatever its settings were (for a stage that is redone rather than resumed)."""

    def __init__(self, system: str, cfg: RunConfig, *, keep_checkpoints: int = 2, tensorboard: bool = True,
                 restart: bool = False):
        try:
            plain_name(cfg.name)  # configs check it too, but not one changed with `model_copy`
        except ValueError as e:
            raise UserError(f"config key 'name': {e} (got {cfg.name!r})") from None
        self.path = Path(cfg.root) / system / cfg.name
        self.plots = self.path / "plots"
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpointer = Checkpointer(self.path / "checkpoints", keep=keep_checkpoints,
                                         extra=lambda: {"metrics_records": self._records})
        self._tensorboard = tensorboard
        self._writer = None
        self._purge_step: int | None = None
        self._lock = self._acquire_lock() if is_main() else None
        finished = (self.path / "summary.json").exists()
        if not (cfg.resume or restart) and (finished or self.metrics_path.exists() or self.checkpointer.steps()):
            raise UserError(f"run directory {self.path} already holds a run: pass resume=true to continue it "
                            f"or name=<new name> to start another")
        if cfg.resume and not restart:
            self._check_saved_config(cfg)
        self._records = len(self._read_metric_lines())
        if is_main():
            remove_stale_temporaries(self.path)
            remove_stale_temporaries(self.checkpointer.directory)
            try:
                self.plots.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create {self.plots}: {e.strerror or e}") from None
            atomic_write_text(self.path / "config.yaml", config_to_yaml(cfg))
        barrier()
        if restart:
            self.rewind(-1)

    def _acquire_lock(self) -> IO:
        """An exclusive lock on `<run>/.lock`, held until `close()` or the process ends (the
        operating system drops it then, even after `kill -9`)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = open(self.path / ".lock", "a")
        except OSError as e:
            raise UserError(f"cannot create run directory {self.path}: {e.strerror or e}") from None
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise UserError(f"run {self.path} is in use by another process: wait for it to end, or choose "
                            f"another name") from None
        return lock

    def _check_saved_config(self, cfg: RunConfig) -> None:
        saved_path = self.path / "config.yaml"
        if not saved_path.is_file():
            return
        try:
            saved = yaml.safe_load(saved_path.read_text())
        except yaml.YAMLError:
            raise UserError(f"{saved_path} is not valid YAML: cannot check the settings to resume with") from None
        differ = config_differences(saved if isinstance(saved, dict) else {}, cfg.model_dump(mode="json"))
        if differ:
            raise UserError(f"run {self.path} was made with other settings ({', '.join(differ)}): resume it with "
                            f"the settings in its config.yaml, or start another with name=<new name>")

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
        self.checkpointer.discard_after(checkpoint["step"])
        self.rewind(checkpoint["step"], checkpoint.get("metrics_records"))
        return {"step": checkpoint["step"], "state": checkpoint["state"]}

    def rewind(self, step: int, records: int | None = None) -> None:
        """Forget metrics logged after the checkpoint at `step`: all but the first `records` lines
        when the checkpoint says how many there were (a step logged both before and after its
        checkpoint, like a final evaluation, is then not logged twice), else those after `step`."""
        self._purge_step = step + 1
        lines = self._read_metric_lines()
        kept = lines[:records] if records is not None else [line for line in lines
                                                             if json.loads(line).get("step", -1) <= step]
        self._records = len(kept)
        if is_main() and self.metrics_path.exists():
            atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one metrics record (and its numeric values to TensorBoard)."""
        if not is_main():
            return
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        try:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise UserError(f"cannot write {self.metrics_path}: {e.strerror or e}") from None
        self._records += 1
        if self._tensorboard:
            writer = self._tb()
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    writer.add_scalar(k, v, step)

    def read_metrics(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._read_metric_lines()]

    def _read_metric_lines(self) -> list[str]:
        """The log's lines, but a last one cut short by a crash mid-write (it is rewritten on resume)."""
        if not self.metrics_path.exists():
            return []
        lines = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        for i, line in enumerate(lines):
            try:
                json.loads(line)
            except json.JSONDecodeError:
                if i < len(lines) - 1:
                    raise UserError(f"{self.metrics_path} line {i + 1} is not JSON: the metrics log is "
                                    f"corrupt") from None
                return lines[:-1]
        return lines

    def write_summary(self, summary: dict[str, Any]) -> None:
        if is_main():
            atomic_write_json(self.path / "summary.json", summary)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None

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
    differ = config_differences(saved, cfg.model_dump(mode="json")) if isinstance(saved, dict) else ["config.yaml"]
    if differ:
        raise UserError(f"run {path} finished with other settings ({', '.join(differ)}): delete it or choose "
                        f"another name or prefix")
    return json.loads((path / "summary.json").read_text())


def committed_summary(system: str, cfg: RunConfig, results_dir: str | os.PathLike,
                      run: Callable[[RunConfig], dict[str, Any]]) -> dict[str, Any]:
    """The summary of `cfg`'s run, from `<results_dir>/<name>.json` (a file this function wrote,
    in this session or an earlier one, possibly on another machine), else from its finished run
    directory, else by calling `run(cfg)` (with `resume=true` when an interrupted run of it is in
    its directory, so a stopped comparison continues where it was); the file, `{"settings",
    "summary"}`, is written when missing. A file or a finished run made with other settings is a `UserError`, as in
    `finished_summary`: numbers are never reported under settings they were not made with. A
    setting the file lacks matches when `cfg` leaves it at its default: it was added to the config
    after the file was written, and the file's run could not have set it."""
    path = Path(results_dir) / f"{cfg.name}.json"
    now = cfg.model_dump(mode="json")
    if path.is_file():
        saved = json.loads(path.read_text())
        differ = config_differences(saved.get("settings", {}), now,
                                    defaults=type(cfg).model_construct().model_dump(mode="json"))
        if differ:
            raise UserError(f"{path} was made with other settings ({', '.join(differ[:5])}): delete it or choose "
                            f"another name or prefix")
        return saved["summary"]
    summary = finished_summary(system, cfg)
    if summary is None:
        started = (Path(cfg.root) / system / cfg.name / "metrics.jsonl").exists()
        summary = run(cfg.model_copy(update={"resume": True}) if started else cfg)
    atomic_write_json(path, {"settings": {k: v for k, v in now.items() if k not in LOCATION_KEYS},
                             "summary": summary})
    return summary


def config_differences(saved: dict[str, Any], now: dict[str, Any], defaults: dict[str, Any] | None = None
                       ) -> list[str]:
    """The dotted keys whose values differ between two config dumps (a key only one has differs,
    unless `saved` lacks it and `now` has it at its value in `defaults`), `LOCATION_KEYS` aside."""
    a, b = _flatten(saved), _flatten(now)
    if defaults is not None:
        d = _flatten(defaults)
        a |= {k: d[k] for k in b.keys() - a.keys() if k in d}
    return sorted(k for k in a.keys() | b.keys() if k not in LOCATION_KEYS and a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as dotted keys (`update.lr`), so a difference is named where it is."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _plain(v: Any) -> Any:
    """Tensors and NumPy scalars as plain Python numbers for JSON."""
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    return v
