"""Reliability check: kill -9 and resume every training recipe, and fuzz `key=value` overrides.

    python benchmarks/reliability.py                          # 10 kills per recipe, 1,000 fuzz cases
    python benchmarks/reliability.py --kills 1 --recipes ranking,sid --cases 30   # a smoke run
    python benchmarks/reliability.py --recipes agents --groups ttrl,skillc    # some recipes only
    python benchmarks/reliability.py --part kills             # one part only (kills or fuzz)
                                     [--seed 0] [--chain 2] [--timeout 30] [--out docs/results/reliability.json]

Part 1 (kills): for each recipe (ranking train, sid train, ttrl run, agents bc, skillc train, each
on its quick config with overrides that make it take seconds) it runs the recipe once without
interruption (the reference), then starts it again under another name and sends SIGKILL to its
process group at a random moment (half of them after the reference's first checkpoint), or (one
time in three) as soon as the first, second or third `*.tmp` file appears in the run's
`checkpoints/` folder, i.e. during an atomic checkpoint write. It resumes with `resume=true`
(the resumed process is itself killed `--chain - 1` more times), lets the last resume finish, and
compares its `summary.json` with the reference's. A run that ends before its kill moment is not a
kill; the recipe is tried again (at most 3 x --kills runs) until --kills kills have landed. Keys
that measure the process rather than the result are left out of the comparison (TIMING_KEY below:
any key with `seconds` in it, `*_per_s`, `peak_rss_mb`, and skillc's `skill_rollout_share`, the
share of rollout wall-clock spent with skills); everything else must be identical (NaN equals NaN).

Part 2 (fuzz): each case draws a command group, a key of its recipe's config class (the pydantic
model walked down to its leaves, nested keys as `a.b`) and a value, six times in ten from a pool
meant as nonsense (0, -1, -5, 10**12, nan, inf, -inf, on, banana, "", [], ../escape, an absolute
folder, a 5,000-character string, a mapping, null, 1.5, true), else one of the field's plausible
values (the default, half and twice it, its bounds, its choices). `is_nonsense` then decides from
the field's type and bounds alone whether the value is one the config must refuse (see its
docstring): `steps=0` is nonsense, `eval_every=0` (a `NonNegativeInt`) and `steps=10**12` are not.
The command runs in a subprocess (`--timeout` seconds) on the recipe's quick settings; `classify`
sorts the outcome into clean error (exit 2, the last line of stderr an `error:` line, no traceback),
traceback (a `Traceback` anywhere, or an exit status other than 0 or 2), silent acceptance (nonsense
that exits 0 or is still running at the timeout) and accepted (a plausible value that runs, to the
end or to the timeout).

Sub-processes run one at a time, with OMP_NUM_THREADS=1, in a temporary folder (removed at the end
unless --keep) as their working directory, with `root=` inside it; the absolute folder of the
nonsense values is a folder inside it, so nothing is written elsewhere. Their address space is
capped (--mem-gb, default 8) so an absurd size fails instead of exhausting the machine; a
MemoryError under that cap counts as a traceback. The figures and the failing cases go to --out
(JSON); a table to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def log(text: str) -> None:
    """Progress on stderr: a full run takes hours on a shared machine."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# the recipes and their quick settings

@dataclass
class Recipe:
    group: str  # command group (`tetrad <group> <command>`)
    command: str
    system: str  # runs/<system>/<name>/
    config: str  # the quick YAML, relative to the repository
    config_class: str  # module:Class of what `--config` is read into
    quick: list[str]  # overrides (after root=) that make a run take seconds; "{sb}" is the sandbox
    prep: list[list[str]] = field(default_factory=list)  # commands run once before (e.g. a base policy)
    warm_up: bool = False  # its first run builds what later runs reuse (a dataset, a base policy): not timed

    def argv(self, sandbox: Path, *overrides: str) -> list[str]:
        quick = [o.replace("{sb}", str(sandbox)) for o in self.quick]
        return [self.group, self.command, "--config", str(REPO / self.config), f"root={sandbox / 'runs'}",
                *quick, *overrides]


BC_TINY = ["n_games=6", "n_products=200", "hidden=16", "layers=1", "heads=2", "steps=8", "batch_size=2",
           "eval_examples=4", "eval_every=4", "checkpoint_every=2", "log_every=2", "holdout=0.2", "device=cpu"]

RECIPES: dict[str, Recipe] = {
    "ranking": Recipe(
        "ranking", "train", "ranking", "configs/ranking/mtmixatt_tiny.yaml", "tetrad.ranking.train:TrainConfig",
        ["data.path={sb}/data/ranking", "data.synthetic.rows=3000", "data.synthetic.users=200",
         "data.synthetic.items=500", "model.hash_buckets=2000", "batch_size=64", "steps=24", "log_every=4",
         "checkpoint_every=4", "eval_rows=1000", "threads=1", "device=cpu"], warm_up=True),
    "sid": Recipe(
        "sid", "train", "sid", "configs/sid/long_tail.yaml", "tetrad.semantic_ids.train:SidConfig",
        ["data.items=2000", "data.dim=16", "data.top_clusters=8", "data.sub_clusters=8", "data.users=120",
         "quantizer.codebook_size=16", "quantizer.niter=5", "model.d_model=32", "model.layers=1", "model.heads=2",
         "model.d_kv=16", "model.d_ff=64", "train.steps=8", "train.batch_size=32", "train.eval_every=4",
         "train.checkpoint_every=2", "eval.beam=10", "eval.valid_users=20", "sasrec.enabled=false"]),
    "ttrl": Recipe(
        "ttrl", "run", "ttrl", "configs/ttrl/quick.yaml", "tetrad.ttrl.recipe:TTRLConfig",
        ["pretrain.root={sb}/runs", "pretrain.model.hidden=32", "pretrain.model.layers=1", "pretrain.model.heads=2",
         "pretrain.steps=20", "pretrain.train_size=500", "pretrain.batch_size=16", "pretrain.eval_samples=2",
         "tasks.size=8", "n_samples=4", "n_train=2", "batch_prompts=4", "epochs=2", "eval_samples=2",
         "checkpoint_every=1", "update.micro_batch=8"], warm_up=True),
    "agents": Recipe(
        "agents", "bc", "agents", "configs/agents/bc_shop_small.yaml", "tetrad.agents.bc:BCConfig", BC_TINY),
    "skillc": Recipe(
        "skillc", "train", "skillc", "configs/skillc/skillc.yaml", "tetrad.skillc.recipe:SkillCConfig",
        ["base_policy={sb}/runs/agents/skillc-base", "n_products=200", "n_train=8", "n_val=4", "n_test=4", "steps=4",
         "max_steps=6", "tasks_per_step=2", "group_size=2", "checkpoint_every=1", "n_envs=2", "lr=1e-3",
         "curriculum.validate_every=2", "device=cpu"],
        prep=[["agents", "bc", "--config", str(REPO / "configs/agents/bc_shop_small.yaml"), "root={sb}/runs",
               "name=skillc-base", *BC_TINY]]),
}


# ---------------------------------------------------------------------------------------------
# running one command

@dataclass
class Outcome:
    returncode: int | None  # None: still running at the timeout (killed then)
    stdout: str
    stderr: str
    seconds: float
    killed: bool = False  # we sent SIGKILL at the moment chosen (not at the timeout)
    tmp_at_kill: bool = False  # a checkpoint temporary was on disk when we killed
    first_checkpoint: float | None = None  # seconds in, when the first checkpoint file was seen


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CI": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])})
    return env


def _limits(mem_gb: float):
    def apply() -> None:
        os.nice(19)
        if mem_gb > 0:
            cap = int(mem_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return apply


def start(argv: list[str], cwd: Path, mem_gb: float, out_dir: Path) -> tuple[subprocess.Popen, Path, Path]:
    """`tetrad <argv>` in its own process group (killing it kills any workers it started), output to files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    so, se = out_dir / "stdout.txt", out_dir / "stderr.txt"
    cmd = [sys.executable, "-c", "from tetrad.cli import main; main()", *argv]
    with open(so, "w") as fo, open(se, "w") as fe:
        proc = subprocess.Popen(cmd, cwd=cwd, env=_child_env(), stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_limits(mem_gb))
    return proc, so, se


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _tail(path: Path, limit: int = 20_000) -> str:
    text = path.read_text(errors="replace")
    return text if len(text) <= limit else text[:2_000] + "\n...\n" + text[-(limit - 2_000):]


def run(argv: list[str], cwd: Path, timeout: float, mem_gb: float, out_dir: Path, kill_at: float | None = None,
        checkpoints: Path | None = None, on_write: int = 0) -> Outcome:
    """Run `tetrad <argv>`; SIGKILL it (and its process group) `kill_at` seconds in, or as soon as
    the `on_write`-th new `.*.tmp` (an atomic write under way) is seen in the `checkpoints` folder,
    or at `timeout`."""
    watched = checkpoints if checkpoints is not None else Path("/nonexistent")
    stale = _temporaries(watched)  # left by an earlier kill: the run removes them, they are not a write
    had = set(watched.glob("step_*")) if watched.is_dir() else set()
    proc, so, se = start(argv, cwd, mem_gb, out_dir)
    t0 = time.monotonic()
    killed = timed_out = False
    writes: set[str] = set()
    first = None
    while proc.poll() is None:
        now = time.monotonic() - t0
        timed_out = now >= timeout
        if on_write:
            writes |= _temporaries(watched) - stale
        if first is None and watched.is_dir() and set(watched.glob("step_*")) - had:
            first = now
        if timed_out or (kill_at is not None and now >= kill_at) or (on_write and len(writes) >= on_write):
            kill_group(proc)
            killed = not timed_out
            break
        time.sleep(0.002 if on_write else 0.02)
    seconds = time.monotonic() - t0
    if not (killed or timed_out):
        kill_group(proc)  # a worker it left behind would hold a core (and the run's files)
    mid_write = killed and bool(_temporaries(watched) - stale)  # a new temporary left: killed mid-write
    return Outcome(None if timed_out else proc.returncode, _tail(so), _tail(se), seconds, killed, mid_write, first)


def _temporaries(folder: Path) -> set[str]:
    """The temporaries of atomic writes in `folder` (`tetrad.core.io`: `.<name>.<random>.tmp`)."""
    return {p.name for p in folder.glob(".*.tmp")} if folder.is_dir() else set()


# ---------------------------------------------------------------------------------------------
# part 1: kill -9 and resume

class RecipeBroken(Exception):
    """A recipe's preparation or uninterrupted reference run failed: it cannot be checked."""

# Keys of a summary that measure the process, not what it computed. Every other key must match.
TIMING_KEY = re.compile(r"seconds|_per_s$|^peak_rss_mb$|^skill_rollout_share$")


def without_timings(obj: Any) -> Any:
    """`obj` (a loaded summary.json) with every TIMING_KEY dropped, at any depth."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if not TIMING_KEY.search(str(k))}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """The dotted keys at which two summaries (timings already dropped) differ; NaN equals NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{where}.{k}" if where else str(k)
            out += [key] if (k in a) != (k in b) else differences(a[k], b[k], key)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [where or "<root>"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b and type(a) is type(b) else [where or "<root>"]


def _summary(sandbox: Path, recipe: Recipe, name: str) -> Any:
    text = (sandbox / "runs" / recipe.system / name / "summary.json").read_text()
    # a path naming the run's own folder differs by the run's name only
    return json.loads(text.replace(f"/{recipe.system}/{name}", f"/{recipe.system}/<run>"))


def kill_recipe(recipe: Recipe, sandbox: Path, kills: int, chain: int, rng: random.Random, mem_gb: float,
                logs: Path) -> dict:
    """Reference run, then runs killed `chain` times each and resumed, until `kills` kills landed."""
    cwd = sandbox / "work"
    prepare(recipe, sandbox, mem_gb, logs)
    ref = run(recipe.argv(sandbox, "name=reference"), cwd, 3600, mem_gb, logs / f"{recipe.group}-reference",
              checkpoints=sandbox / "runs" / recipe.system / "reference" / "checkpoints")
    if ref.returncode != 0:
        raise RecipeBroken(f"the reference run failed (exit {ref.returncode}): "
                           f"{(ref.stderr.strip().splitlines() or [''])[-1]}")
    reference = without_timings(_summary(sandbox, recipe, "reference"))
    # half the timed kills anywhere in a run (start-up included), half once it has checkpointed
    training = (ref.first_checkpoint, 0.9 * ref.seconds) if (ref.first_checkpoint or 1e9) < 0.9 * ref.seconds else None
    first = None if ref.first_checkpoint is None else round(ref.first_checkpoint, 1)
    log(f"{recipe.group}: reference run {ref.seconds:.1f} s, first checkpoint at {first} s")
    result = {"reference_seconds": round(ref.seconds, 1), "first_checkpoint_seconds": first, "kills": 0,
              "kills_during_checkpoint_write": 0, "runs": 0, "survived": 0, "identical": 0, "failures": []}
    trial = 0
    while result["kills"] < kills and trial < 3 * kills:
        trial += 1
        name = f"kill-{trial}"
        ckpts = sandbox / "runs" / recipe.system / name / "checkpoints"
        landed, modes, hung = 0, [], False
        for attempt in range(chain):
            if result["kills"] + landed >= kills:
                break
            extra = [f"name={name}"] + (["resume=true"] if attempt else [])
            on_write = rng.randint(1, 3) if rng.random() < 1 / 3 else 0
            at = None if on_write else (rng.uniform(*training) if training and rng.random() < 0.5
                                        else rng.uniform(0.05, 0.9) * ref.seconds)
            out = run(recipe.argv(sandbox, *extra), cwd, 4 * ref.seconds + 60, mem_gb,
                      logs / f"{recipe.group}-{name}-{attempt}", kill_at=at, checkpoints=ckpts, on_write=on_write)
            if out.returncode is None:
                hung = True
                result["failures"].append({"run": name, "kills": modes,
                                           "problem": f"still running after {out.seconds:.0f} s (4x the reference)"})
                log(f"{recipe.group} {name}: HUNG (still running after {out.seconds:.0f} s)")
                break
            if not out.killed:
                break  # it finished first: nothing more to kill in this run
            landed += 1
            result["kills_during_checkpoint_write"] += out.tmp_at_kill
            saved = len(list(ckpts.glob("step_*"))) if ckpts.is_dir() else 0
            modes.append(("during a checkpoint write" if out.tmp_at_kill else
                          f"at {out.seconds:.1f} s" + (" (right after a checkpoint write)" if on_write else ""))
                         + f" with {saved} checkpoint{'s' * (saved != 1)} saved")
        result["kills"] += landed
        if hung:
            result["runs"] += 1
            continue
        if not landed:
            log(f"{recipe.group} {name}: finished before the kill; again")
            continue
        result["runs"] += 1
        out = run(recipe.argv(sandbox, f"name={name}", "resume=true"), cwd, 4 * ref.seconds + 120, mem_gb,
                  logs / f"{recipe.group}-{name}-resume")
        what = f"{recipe.group} {name}: killed {', '.join(modes)}"
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or [""])[-1]
            result["failures"].append({"run": name, "kills": modes, "problem": f"resume exit {out.returncode}: {last}"})
            log(f"{what}; resume FAILED (exit {out.returncode}): {last}")
            continue
        result["survived"] += 1
        try:
            diff = differences(reference, without_timings(_summary(sandbox, recipe, name)))
        except (OSError, ValueError) as e:
            diff = [f"summary.json unreadable: {e}"]
        if diff:
            result["failures"].append({"run": name, "kills": modes,
                                       "problem": "summary differs at " + ", ".join(diff[:20])})
            log(f"{what}; resumed, summary DIFFERS at {', '.join(diff[:5])}")
        else:
            result["identical"] += 1
            log(f"{what}; resumed, identical summary")
    return result


# ---------------------------------------------------------------------------------------------
# part 2: fuzzing key=value overrides

@dataclass(frozen=True)
class FieldSpec:
    """What a config field accepts, read from its annotation: `kind` is int, float, bool, str,
    literal, list, dict, section (a nested config) or any; bounds from `Field(ge=..., ...)`."""

    key: str
    kind: str
    optional: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None
    choices: tuple = ()
    item: "FieldSpec | None" = None
    default: Any = None
    plain_name: bool = False  # a run name: one folder name (RunConfig's validator)


def _bounds(metadata) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in metadata:
        inner = getattr(m, "metadata", None)
        if isinstance(inner, list):  # a FieldInfo inside Annotated[...]
            out.update(_bounds(inner))
        for name in ("ge", "gt", "le", "lt", "min_length"):
            if getattr(m, name, None) is not None:
                out[name] = getattr(m, name)
    return out


def field_spec(key: str, annotation: Any, metadata=(), default: Any = None) -> FieldSpec:
    from pydantic import BaseModel

    bounds = _bounds(metadata)
    optional = False
    while True:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin is Annotated:
            annotation, bounds = args[0], {**bounds, **_bounds(args[1:])}
        elif origin in (Union, types.UnionType) and type(None) in args:
            others = [a for a in args if a is not type(None)]
            optional = True
            if len(others) != 1:
                return FieldSpec(key, "any", optional, default=default)
            annotation = others[0]
        else:
            break
    if origin is Literal:
        return FieldSpec(key, "literal", optional, choices=tuple(args), default=default)
    if origin is list:
        item = field_spec(key + "[]", args[0]) if args else FieldSpec(key + "[]", "any")
        return FieldSpec(key, "list", optional, item=item, default=default, **bounds)
    if origin is dict or annotation is dict:
        return FieldSpec(key, "dict", optional, default=default, **bounds)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return FieldSpec(key, "section", optional, default=default)
    if annotation in (bool, int, float, str):
        return FieldSpec(key, annotation.__name__, optional, default=default, **bounds)
    return FieldSpec(key, "any", optional, default=default)


def config_fields(cls, prefix: str = "") -> list[FieldSpec]:
    """Every field of a pydantic config class, nested sections walked (their keys as `a.b`); a
    section is listed itself too (setting it to a scalar must be refused)."""
    from pydantic import BaseModel

    from tetrad.core.config import RunConfig

    out = []
    for name, info in cls.model_fields.items():
        key = prefix + name
        spec = field_spec(key, info.annotation, info.metadata, info.default)
        if name == "name" and issubclass(cls, RunConfig):
            spec = FieldSpec(key, "str", default=info.default, plain_name=True)
        out.append(spec)
        if spec.kind == "section":
            sub = info.annotation
            for a in [sub, *get_args(sub)]:
                if isinstance(a, type) and issubclass(a, BaseModel):
                    out += config_fields(a, key + ".")
                    break
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_nonsense(spec: FieldSpec, value: Any) -> bool:
    """Whether `value` (as the override parser reads it, e.g. `on` -> True, `.nan` -> nan) is one the
    field must refuse, decided from its type and bounds alone:

    - int: not an integer (booleans, strings, lists, mappings and non-integral floats included),
      or outside the field's bounds; float: not a number (booleans and strings included), not
      finite (every config float must be), or outside its bounds;
    - bool: anything but true/false (YAML's on/off/yes/no read as booleans and are fine);
    - str: anything but a string; a run `name` also anything but one plain folder name (no `/` or
      `\\`, not empty, `.` or `..`, at most `MAX_NAME_LENGTH` bytes);
    - a literal: anything but one of its choices; a list: not a list, fewer items than its
      minimum, or a nonsense item; a mapping or a section: anything but a mapping;
    - `None` (or the empty override) is nonsense unless the field is optional (for strings the
      empty override is the empty string, which is fine).
    """
    if value is None:
        return not spec.optional
    if spec.kind == "any":
        return False
    if spec.kind in ("int", "float"):
        if not _is_number(value):
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return True
        if spec.kind == "int" and isinstance(value, float) and not value.is_integer():
            return True
        return ((spec.ge is not None and value < spec.ge) or (spec.gt is not None and value <= spec.gt)
                or (spec.le is not None and value > spec.le) or (spec.lt is not None and value >= spec.lt))
    if spec.kind == "bool":
        return not isinstance(value, bool)
    if spec.kind == "str":
        from tetrad.core.config import MAX_NAME_LENGTH

        if not isinstance(value, str):
            return True
        return spec.plain_name and (value in ("", ".", "..") or any(c in value for c in "/\\\0")
                                    or len(value.encode()) > MAX_NAME_LENGTH)
    if spec.kind == "literal":
        return not any(value == c and type(value) is type(c) for c in spec.choices)
    if spec.kind == "list":
        if not isinstance(value, list) or (spec.min_length is not None and len(value) < spec.min_length):
            return True
        return any(is_nonsense(spec.item, v) for v in value) if spec.item else False
    if spec.kind in ("dict", "section"):
        return not isinstance(value, dict)
    return False


# The nonsense values every case may draw (YAML text, as typed after `key=`); "{abs}" is an
# existing absolute folder (inside the sandbox).
NONSENSE = ["0", "-1", "-5", str(10**12), ".nan", ".inf", "-.inf", "on", "banana", "", "[]", "../escape", "{abs}",
            "x" * 5000, "{a: 1}", "[1, banana]", "null", "1.5", "true"]


def plausible_values(spec: FieldSpec) -> list[str]:
    """Values a user could mean for this field: its default, nearby values inside its bounds."""
    d = spec.default
    if spec.kind == "bool":
        return ["true", "false"]
    if spec.kind == "literal":
        return [json.dumps(c) if isinstance(c, str) else str(c) for c in spec.choices]
    if spec.kind in ("int", "float"):
        lo = spec.ge if spec.ge is not None else (spec.gt if spec.gt is not None else None)
        hi = spec.le if spec.le is not None else (spec.lt if spec.lt is not None else None)
        base = d if _is_number(d) else (lo if lo is not None else 1)
        cands = [base, base * 2, base / 2, 1, 2, 0.5, 0.1]
        if lo is not None:
            cands.append(lo)
        if hi is not None:
            cands.append(hi)
        out = []
        for c in cands:
            if spec.kind == "int":
                c = int(c)
            if not is_nonsense(spec, c) and repr(c) not in out:
                out.append(repr(c))
        return out or ["1"]
    if spec.kind == "str":
        return [json.dumps(d if isinstance(d, str) else ""), "fuzz-a", "cpu" if "device" in spec.key else "zz"]
    if spec.kind == "list":
        return ["[]" if not spec.min_length else json.dumps(d if isinstance(d, list) else [1]),
                json.dumps(d) if isinstance(d, list) else "[]"]
    if spec.kind in ("dict", "section"):
        return ["{}"]
    return ["1"]


def parse_override_value(raw: str) -> Any:
    """The value `key=<raw>` gives, parsed exactly as `tetrad.core.config` parses overrides."""
    from tetrad.core.config import apply_overrides

    return apply_overrides({}, [f"k={raw}"])["k"]


CATEGORIES = ("clean", "traceback", "silent", "accepted")


def classify(returncode: int | None, stdout: str, stderr: str, nonsense: bool) -> str:
    """One fuzz case's outcome. `returncode` None: still running at the timeout (it was killed).

    - traceback: `Traceback` anywhere in the output, or an exit status other than 0 and 2;
    - clean: exit 2 and the last non-empty line of stderr is the error line (holds `error:`);
    - silent: nonsense that exits 0 or is still running at the timeout;
    - accepted: a plausible value that exits 0 or is still running at the timeout.
    Exit 2 without an `error:` last line (a message over several lines) counts as a traceback.
    """
    if "Traceback (most recent call last)" in stdout or "Traceback (most recent call last)" in stderr:
        return "traceback"
    if returncode == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        return "clean" if lines and "error:" in lines[-1] else "traceback"
    if returncode in (0, None):
        return "silent" if nonsense else "accepted"
    return "traceback"


@dataclass
class Case:
    group: str
    key: str
    raw: str
    nonsense: bool


def draw_cases(n: int, rng: random.Random, groups: list[str]) -> list[Case]:
    import importlib

    fields = {}
    for g in groups:
        module, cls = RECIPES[g].config_class.split(":")
        fields[g] = config_fields(getattr(importlib.import_module(module), cls))
    cases = []
    for i in range(n):
        g = groups[i % len(groups)]
        spec = rng.choice(fields[g])
        raw = rng.choice(NONSENSE) if rng.random() < 0.6 else rng.choice(plausible_values(spec))
        value = parse_override_value(raw.replace("{abs}", "/abs"))
        cases.append(Case(g, spec.key, raw, is_nonsense(spec, value)))
    return cases


def fuzz(cases: list[Case], sandbox: Path, timeout: float, mem_gb: float, logs: Path) -> dict:
    counts = {g: {c: 0 for c in ("tried", *CATEGORIES)} for g in RECIPES}
    failing = []
    for i, case in enumerate(cases):
        here = sandbox / "fuzz" / f"case-{i}"
        cwd = here / "work"
        cwd.mkdir(parents=True)
        (here / "abs").mkdir()
        raw = case.raw.replace("{abs}", str(here / "abs"))
        argv = RECIPES[case.group].argv(sandbox, f"name=fuzz-{i}", f"{case.key}={raw}")
        argv[argv.index(f"root={sandbox / 'runs'}")] = f"root={here / 'runs'}"
        out = run(argv, cwd, timeout, mem_gb, logs / "fuzz" / str(i))
        verdict = classify(out.returncode, out.stdout, out.stderr, case.nonsense)
        counts[case.group]["tried"] += 1
        counts[case.group][verdict] += 1
        # the report names the temporary folder as <sandbox>: it is gone after the run, and no
        # machine's path belongs in a committed file
        text = raw.replace(str(sandbox), "<sandbox>")
        shown = text if len(text) <= 40 else text[:20] + f"...({len(text)} chars)"
        last = (out.stderr.strip().splitlines() or [""])[-1] if out.returncode not in (0, None) else ""
        last = last.replace(str(sandbox), "<sandbox>")[:200]
        if verdict in ("traceback", "silent"):
            failing.append({"command": f"tetrad {case.group} {RECIPES[case.group].command}", "override":
                            f"{case.key}={shown}", "nonsense": case.nonsense, "verdict": verdict,
                            "exit": out.returncode, "last_line": last})
        log(f"fuzz {i + 1}/{len(cases)} {case.group} {case.key}={shown!r} "
            f"({'nonsense' if case.nonsense else 'plausible'}): {verdict} "
            f"[exit {out.returncode}, {out.seconds:.1f} s] {last[:120]}")
        shutil.rmtree(here, ignore_errors=True)
    total = {c: sum(counts[g][c] for g in counts) for c in ("tried", *CATEGORIES)}
    return {"total": total, "per_group": {g: v for g, v in counts.items() if v["tried"]}, "failing": failing}


# ---------------------------------------------------------------------------------------------

def prepare(recipe: Recipe, sandbox: Path, mem_gb: float, logs: Path) -> None:
    """Build once what every run of `recipe` reuses (a base policy, generated data, a pretrained
    model), so that a run takes seconds and the reference run's time is a run's time."""
    done = sandbox / f".prepared-{recipe.group}"
    if done.exists():
        return
    steps = [[a.replace("{sb}", str(sandbox)) for a in prep] for prep in recipe.prep]
    if recipe.warm_up:
        steps.append(recipe.argv(sandbox, "name=warm-up"))
    for i, argv in enumerate(steps):
        out = run(argv, sandbox / "work", 3600, mem_gb, logs / f"{recipe.group}-prep{i}")
        if out.returncode != 0:
            raise RecipeBroken(f"preparation `tetrad {' '.join(argv[:2])}` failed (exit {out.returncode}): "
                               f"{(out.stderr.strip().splitlines() or [''])[-1]}")
        log(f"{recipe.group}: prepared with `tetrad {' '.join(argv[:2])}` in {out.seconds:.1f} s")
    done.touch()


def table(result: dict) -> str:
    lines = [f"{g}: {why}" for g, why in result.get("broken", {}).items()] + ([""] if result.get("broken") else [])
    if "kills" in result:
        lines += ["| recipe | kills | of them during a checkpoint write | resumed runs | finished "
                  "| identical summary |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in result["kills"].items():
            lines.append(f"| {name} | {r['kills']} | {r['kills_during_checkpoint_write']} | {r['runs']} | "
                         f"{r['survived']} | {r['identical']} |")
        lines.append("")
    if "fuzz" in result:
        lines += ["| command group | cases | clean error | traceback | silently accepted | accepted (plausible) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        rows = {**result["fuzz"]["per_group"], "all": result["fuzz"]["total"]}
        for g, c in rows.items():
            lines.append(f"| {g} | {c['tried']} | {c['clean']} | {c['traceback']} | {c['silent']} | {c['accepted']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["all", "kills", "fuzz"], default="all")
    ap.add_argument("--recipes", default=",".join(RECIPES),
                    help="recipes to kill, comma-separated, of " + ", ".join(RECIPES))
    ap.add_argument("--groups", default=",".join(RECIPES), help="command groups to fuzz (same names)")
    ap.add_argument("--kills", type=int, default=10, help="kills per recipe")
    ap.add_argument("--chain", type=int, default=2, help="kills per run before it is let finish")
    ap.add_argument("--cases", type=int, default=1000, help="fuzz cases (spread over the recipes' groups)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds a fuzz case may run")
    ap.add_argument("--mem-gb", type=float, default=8.0, help="address-space cap of every sub-process (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "docs/results/reliability.json"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (runs and logs)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(SRC))
    recipes = [g for g in args.recipes.split(",") if g]
    groups = [g for g in args.groups.split(",") if g]
    unknown = [g for g in recipes + groups if g not in RECIPES]
    if unknown:
        ap.error(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    rng = random.Random(args.seed)
    sandbox = Path(tempfile.mkdtemp(prefix="tetrad-reliability-"))
    logs = sandbox / "logs"
    (sandbox / "work").mkdir()
    started = time.monotonic()
    command = " ".join(["python benchmarks/reliability.py", *(argv if argv is not None else sys.argv[1:])])
    result: dict = {"command": command, "seed": args.seed, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    log(f"sandbox {sandbox}")
    try:
        if args.part in ("all", "kills"):
            result["kills"] = {}
            for g in recipes:
                log(f"kills: {g}")
                try:
                    result["kills"][g] = kill_recipe(RECIPES[g], sandbox, args.kills, max(args.chain, 1), rng,
                                                     args.mem_gb, logs)
                except RecipeBroken as e:
                    log(f"{g}: BROKEN: {e}")
                    result.setdefault("broken", {})[g] = str(e)
        if args.part in ("all", "fuzz") and args.cases > 0:
            for g in groups:
                try:
                    prepare(RECIPES[g], sandbox, args.mem_gb, logs)
                except RecipeBroken as e:  # its cases still run: each will fail, and be counted
                    log(f"{g}: BROKEN: {e}")
                    result.setdefault("broken", {})[g] = str(e)
            cases = draw_cases(args.cases, random.Random(f"fuzz-{args.seed}"), groups)  # whatever ran before
            log(f"fuzz: {len(cases)} cases, {sum(c.nonsense for c in cases)} of them nonsense")
            result["fuzz"] = fuzz(cases, sandbox, args.timeout, args.mem_gb, logs)
    finally:
        if args.keep:
            log(f"kept {sandbox}")
        else:
            shutil.rmtree(sandbox, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\n{result['seconds']:.0f} s; figures and failing cases in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
