"""Generated ALFWorld games: PDDL problems for the `alfred` domain, packed for the real engine.

The ALFWorld game files are a download that cannot be made here, so this module writes games
of the same form from what the installed `alfworld` package carries: the receptacles of a real
AI2-THOR floor plan (`alfworld/gen/layouts/FloorPlan<N>-openable.json`, with the pose from which
each is reached), the object types of that scene (`-objects.json`), which receptacle type can
hold which object (`constants.VAL_RECEPTACLE_OBJECTS`), object affordances
(`constants.VAL_ACTION_OBJECTS`) and the goal and instruction templates of each task type
(`goal_library.gdict`). A game folder holds `game.tw-pddl` (`{pddl_domain, grammar,
pddl_problem, solvable}`, the task instruction written into the grammar as `alfworld-generate`
does) and `traj_data.json` (`task_type`, `pddl_params`, `scene`), the two files the ALFWorld text
engine and its handcoded expert read.

Choices where ALFWorld's own generator (which needs the AI2-THOR simulator) cannot be followed:
- Object instances get synthetic coordinates in ALFWorld's id format (`Mug|+01.23|+00.90|-00.41`
  mangled to `Mug_bar__plus_01_dot_23_...`), the only form the engine's name parser accepts.
- Every instance of the target type is placed away from the goal receptacle type (and, for heat
  and cool tasks, away from microwaves and fridges), so no game is won at reset.
- Distractors: 6-12 other pickupable object types of the scene, 1-2 instances each, each in a
  receptacle type that may hold it.
- Splits: `train` and `valid_seen` draw scenes from ALFWorld's train floor plans, `valid_unseen`
  from its test floor plans; and every (task type, object, receptacle/lamp) combination is
  assigned by a hash to either the seen or the unseen pool, so valid-unseen tasks pair objects
  and receptacles never paired in train. The three splits use disjoint seed streams.
- Sliced-object and movable-receptacle variants are not generated (ALFWorld's text engine skips
  them too).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tetrad.agents.alfworld_env import TASK_TYPES, AlfworldEnv, run_expert
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json

SPLITS = ("train", "valid_seen", "valid_unseen")
LAMPS = ("DeskLamp", "FloorLamp")
LAMP_HOSTS = ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "DiningTable", "TVStand")
# the receptacle a state-change task needs, and the affordance its object must have
STATE_CHANGE = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable"),
}
UNSEEN_SHARE = 5  # one combination in five belongs to the unseen pool


def _alfworld():
    """The data modules of the installed alfworld package (imported lazily: it is slow)."""
    try:
        import alfworld.gen.constants as constants
        import alfworld.gen.goal_library as goal_library
    except ImportError as e:  # pragma: no cover - depends on the install
        raise UserError("the ALFWorld engine is not installed: pip install 'tetrad[agents]'") from e
    return constants, goal_library


def mangle(name: str) -> str:
    """An AI2-THOR object id in the PDDL-safe form ALFWorld's files use (`|` -> `_bar_`, ...)."""
    for a, b in (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_")):
        name = name.replace(a, b)
    return name


@dataclass
class Scene:
    number: int
    receptacles: dict[str, tuple[str, str]]  # AI2-THOR id -> (receptacle type, location name)
    object_types: list[str]


@lru_cache(maxsize=None)
def load_scene(number: int) -> Scene:
    """The receptacles (with the location each is reached from) and object types of a floor plan."""
    constants, _ = _alfworld()
    layouts = resources.files("alfworld.gen") / "layouts"
    try:
        poses = json.loads((layouts / f"FloorPlan{number}-openable.json").read_text())
        types = json.loads((layouts / f"FloorPlan{number}-objects.json").read_text())
    except FileNotFoundError:
        raise UserError(f"alfworld ships no layout for FloorPlan{number}") from None
    static = constants.RECEPTACLES - set(constants.MOVABLE_RECEPTACLES)
    receptacles = {}
    for rid, (x, z, rotation, horizon) in sorted(poses.items()):
        rtype = rid.split("|")[-1] if rid.count("|") == 4 else rid.split("|")[0]  # Sink|..|SinkBasin
        if rtype in static:
            loc = f"loc|{round(x / 0.25)}|{round(z / 0.25)}|{int(rotation) // 90}|{int(horizon)}"
            receptacles[rid] = (rtype, loc)
    return Scene(number, receptacles, sorted(types))


def scene_numbers(split: str, task_type: str) -> list[int]:
    constants, _ = _alfworld()
    pool = constants.TEST_SCENE_NUMBERS if split == "valid_unseen" else constants.TRAIN_SCENE_NUMBERS
    rooms = constants.GOALS_VALID[task_type]
    return [n for n in pool if any(n in constants.SCENE_TYPE[room] for room in rooms)]


def is_unseen_combination(task_type: str, obj: str, target: str) -> bool:
    digest = hashlib.sha256(f"{task_type}/{obj}/{target}".encode()).digest()
    return digest[0] % UNSEEN_SHARE == 0


@dataclass
class GameSpec:
    """One sampled game: the task and where every object instance starts."""

    task_type: str
    scene: int
    object_target: str
    parent_target: str  # "" for look_at_obj_in_light
    toggle_target: str  # "" unless look_at_obj_in_light
    placements: list[tuple[str, str]] = field(default_factory=list)  # (object id, receptacle id)
    agent_location: str = ""
    instruction: str = ""


def pickupable_types() -> set[str]:
    constants, _ = _alfworld()
    holdable = set().union(*constants.VAL_RECEPTACLE_OBJECTS.values())
    return {t for t in holdable if "Sliced" not in t}


def object_locations() -> dict[str, list[str]]:
    """Per kind of object (as the game text names it, "alarmclock"), the kinds of fixed receptacle
    the generator may place it in ("countertop", ...): the prior a searcher needs."""
    constants, _ = _alfworld()
    static = constants.RECEPTACLES - set(constants.MOVABLE_RECEPTACLES)
    out: dict[str, set[str]] = {}
    for rtype, objs in constants.VAL_RECEPTACLE_OBJECTS.items():
        if rtype in static:
            for obj in objs & pickupable_types():
                out.setdefault(obj.lower(), set()).add(rtype.lower())
    return {obj: sorted(out[obj]) for obj in sorted(out)}


def where_objects_are_skills() -> list[dict]:
    """The skill sets of `skills/alfworld/where_objects_are.yaml`, one per kind of object."""
    return [{"name": f"where-{obj}", "environment": "alfworld", "task_object": obj,
             "skills": [{"title": f"Where to find {obj}",
                         "principle": f"Look for {obj} in or on: {', '.join(receptacles)}; it is kept nowhere else.",
                         "when_to_apply": f"When the task needs {obj} and you have not seen one yet."}]}
            for obj, receptacles in object_locations().items()]


def _candidates(scene: Scene, task_type: str, split: str) -> list[tuple[str, str]]:
    """(object type, parent or lamp type) pairs the scene supports for this task, in this split."""
    constants, _ = _alfworld()
    present_r = {rtype for rtype, _ in scene.receptacles.values()}
    objs = [t for t in scene.object_types if t in pickupable_types()]
    pairs = []
    if task_type == "look_at_obj_in_light":
        hosts = [r for r in present_r if r in LAMP_HOSTS]
        lamps = [lamp for lamp in LAMPS if lamp in scene.object_types] if hosts else []
        pairs = [(o, lamp) for o in objs for lamp in lamps]
    else:
        needed = STATE_CHANGE.get(task_type)
        if needed and needed[0] not in present_r:
            return []
        for o in objs:
            if needed and o not in constants.VAL_ACTION_OBJECTS[needed[1]]:
                continue
            for r in sorted(present_r):
                if needed and r == needed[0]:
                    continue
                if o in constants.VAL_RECEPTACLE_OBJECTS.get(r, ()) and _sources(scene, o, r, task_type):
                    pairs.append((o, r))
    unseen = split == "valid_unseen"
    return [(o, t) for o, t in pairs if is_unseen_combination(task_type, o, t) == unseen]


def _sources(scene: Scene, obj: str, parent: str, task_type: str) -> list[str]:
    """Receptacles where an instance of the target may start (not the goal type, nor the
    appliance that would change its state)."""
    constants, _ = _alfworld()
    banned = {parent, "Microwave", "Fridge"} if task_type in STATE_CHANGE else {parent}
    return [rid for rid, (rtype, _) in scene.receptacles.items()
            if rtype not in banned and obj in constants.VAL_RECEPTACLE_OBJECTS.get(rtype, ())]


def _instance_id(rng: random.Random, obj_type: str, used: set[str]) -> str:
    while True:
        x, y, z = (rng.uniform(-3, 3) for _ in range(3))
        oid = f"{obj_type}|{x:+06.2f}|{abs(y):+06.2f}|{z:+06.2f}"
        if oid not in used:
            used.add(oid)
            return oid


def sample_game(rng: random.Random, task_type: str, split: str) -> GameSpec:
    """Sample a household and a task of `task_type` that the `split` allows."""
    constants, glib = _alfworld()
    if task_type not in TASK_TYPES:
        raise UserError(f"unknown task type '{task_type}' (known: {', '.join(TASK_TYPES)})")
    scenes = scene_numbers(split, task_type)
    for _ in range(200):
        scene = load_scene(rng.choice(scenes))
        pairs = _candidates(scene, task_type, split)
        if pairs:
            break
    else:  # pragma: no cover - every task type has supporting scenes in both scene pools
        raise UserError(f"no floor plan supports a {task_type} task in split {split}")
    obj, target = rng.choice(pairs)
    look = task_type == "look_at_obj_in_light"
    spec = GameSpec(task_type, scene.number, obj, "" if look else target, target if look else "")
    used: set[str] = set()
    if look:
        sources = [rid for rid, (rtype, _) in scene.receptacles.items()
                   if obj in constants.VAL_RECEPTACLE_OBJECTS.get(rtype, ())]
        hosts = [rid for rid, (rtype, _) in scene.receptacles.items() if rtype in LAMP_HOSTS]
        spec.placements.append((_instance_id(rng, target, used), rng.choice(hosts)))
    else:
        sources = _sources(scene, obj, target, task_type)
    if task_type == "pick_two_obj_and_place":
        # the handcoded expert closes what it opens and, for the second instance, returns to the
        # receptacle where it saw it and looks without opening it again, until the step limit:
        # pick-two targets start in open receptacles (where the scene has one that may hold them)
        sources = [rid for rid in sources if scene.receptacles[rid][0] not in constants.OPENABLE_CLASS_SET] or sources
    n_targets = rng.randint(2, 3) if task_type == "pick_two_obj_and_place" else rng.randint(1, 2)
    for _ in range(n_targets):
        spec.placements.append((_instance_id(rng, obj, used), rng.choice(sources)))
    others = [t for t in scene.object_types if t in pickupable_types() and t != obj]
    for dtype in rng.sample(others, min(len(others), rng.randint(6, 12))):
        hosts = [rid for rid, (rtype, _) in scene.receptacles.items()
                 if dtype in constants.VAL_RECEPTACLE_OBJECTS.get(rtype, ())
                 and not (rtype == spec.parent_target and dtype == obj)]
        for _ in range(rng.randint(1, 2) if hosts else 0):
            spec.placements.append((_instance_id(rng, dtype, used), rng.choice(hosts)))
    # the agent starts away from every receptacle, so the first observation lists them all
    taken = {loc for _, loc in scene.receptacles.values()}
    while not spec.agent_location or spec.agent_location in taken:
        spec.agent_location = f"loc|{rng.randint(-12, 12)}|{rng.randint(-12, 12)}|{rng.randint(0, 3)}|30"
    template = rng.choice(glib.gdict[task_type]["templates"])
    spec.instruction = template.format(obj=obj.lower(), recep=spec.parent_target.lower(),
                                       toggle=spec.toggle_target.lower())
    return spec


def problem_pddl(spec: GameSpec, name: str) -> str:
    """The PDDL problem of a game, in the layout of ALFWorld's `initial_state.pddl` files."""
    constants, glib = _alfworld()
    scene = load_scene(spec.scene)
    objects = {oid: oid.split("|")[0] for oid, _ in spec.placements}
    receptacles = scene.receptacles
    locations = sorted({loc for _, loc in receptacles.values()} | {spec.agent_location})
    # only the types the game uses are declared (ALFWorld's files declare all ~120; grounding
    # the full list makes the engine several times slower to load, and nothing refers to them)
    otypes = sorted(set(objects.values()) | {spec.object_target})
    rtypes = sorted({rtype for rtype, _ in receptacles.values()} | {"SinkBasin", "Microwave", "Fridge"})
    decl = (["agent1 - agent"] + [f"{t}Type - otype" for t in otypes] + [f"{t}Type - rtype" for t in rtypes]
            + [f"{o} - object" for o in sorted(objects)] + [f"{r} - receptacle" for r in sorted(receptacles)]
            + [f"{loc} - location" for loc in locations])
    present_r = sorted({rtype for rtype, _ in receptacles.values()})
    present_o = sorted(set(objects.values()))
    init = [f"(atLocation agent1 {spec.agent_location})"]
    init += [f"(receptacleType {rid} {rtype}Type)" for rid, (rtype, _) in sorted(receptacles.items())]
    init += [f"(receptacleAtLocation {rid} {loc})" for rid, (_, loc) in sorted(receptacles.items())]
    init += [f"(openable {rid})" for rid, (rtype, _) in sorted(receptacles.items())
             if rtype in constants.OPENABLE_CLASS_SET]
    init += [f"(canContain {r}Type {o}Type)" for r in present_r for o in present_o
             if o in constants.VAL_RECEPTACLE_OBJECTS.get(r, ())]
    where = dict(spec.placements)
    affordances = {"Cleanable": "cleanable", "Heatable": "heatable", "Coolable": "coolable",
                   "Sliceable": "sliceable", "Toggleable": "toggleable"}
    for oid, otype in sorted(objects.items()):
        init.append(f"(objectType {oid} {otype}Type)")
        init.append(f"(inReceptacle {oid} {where[oid]})")
        init.append(f"(objectAtLocation {oid} {receptacles[where[oid]][1]})")
        if otype not in LAMPS:
            init.append(f"(pickupable {oid})")
        if otype in constants.MOVABLE_RECEPTACLES_SET:
            init.append(f"(isReceptacleObject {oid})")
        init += [f"({fact} {oid})" for key, fact in affordances.items()
                 if otype in constants.VAL_ACTION_OBJECTS[key]]
    goal = glib.gdict[spec.task_type]["pddl"].format(
        obj=spec.object_target, recep=spec.parent_target, toggle=spec.toggle_target)
    goal = goal.replace("#", "-")
    text = (f"(define (problem {name})\n    (:domain alfred)\n    (:objects\n        "
            + "\n        ".join(decl) + "\n    )\n    (:init\n        " + "\n        ".join(init)
            + "\n    )\n" + goal.strip() + "\n")  # the library's goal text closes the `define`
    return mangle_pddl(text)


def mangle_pddl(text: str) -> str:
    """Mangle the AI2-THOR ids (`Type|x|y|z`) inside a PDDL text, leaving PDDL syntax alone."""
    return re.sub(r"[A-Za-z]+(\|[^\s()]+)+", lambda m: mangle(m.group(0)), text)


def game_files(spec: GameSpec, name: str) -> tuple[dict, dict]:
    """(`game.tw-pddl` content, `traj_data.json` content) of a sampled game."""
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    grammar = Path(ALFRED_TWL2_PATH).read_text().replace("UNKNOWN GOAL", spec.instruction)
    game = {"pddl_domain": Path(ALFRED_PDDL_PATH).read_text(), "grammar": grammar,
            "pddl_problem": problem_pddl(spec, name), "solvable": True}
    traj = {"task_type": spec.task_type, "scene": {"scene_num": spec.scene},
            "task_id": name, "instruction": spec.instruction,
            "pddl_params": {"object_target": spec.object_target, "parent_target": spec.parent_target,
                            "toggle_target": spec.toggle_target, "mrecep_target": "",
                            "object_sliced": False},
            "turk_annotations": {"anns": [{"task_desc": spec.instruction}]}}
    return game, traj


def split_seed(seed: int, split: str) -> int:
    """Disjoint seed streams per split: the same seed never yields the same game in two splits."""
    return int.from_bytes(hashlib.sha256(f"{split}/{seed}".encode()).digest()[:8], "little")


def make_games(out: str | Path, n: int, split: str = "train", seed: int = 0,
               task_types: list[str] | tuple[str, ...] = TASK_TYPES, verify_steps: int = 50,
               stats: dict | None = None) -> list[Path]:
    """Write `n` games (task types in turn) under `out/<split>/<task_type>-<index>/`.

    With `verify_steps > 0` (default 50, ALFWorld's episode limit) each game is played by
    ALFWorld's handcoded expert in the real engine and resampled until the expert wins within
    that many steps, as ALFWorld keeps only games its solvability check passes (the expert
    searches receptacle by receptacle, so large kitchens and pick-two tasks fail most often).
    `stats`, when given, receives the number of rejected samples per task type.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")
    if n < 1:
        raise UserError(f"number of games must be at least 1 (got {n})")
    for t in task_types:
        if t not in TASK_TYPES:
            raise UserError(f"unknown task type '{t}' (known: {', '.join(TASK_TYPES)})")
    rng = random.Random(split_seed(seed, split))
    folders = []
    for i in range(n):
        task_type = task_types[i % len(task_types)]
        name = f"{task_type}-{i:05d}"
        folder = Path(out) / split / name
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            spec = sample_game(rng, task_type, split)
            game, traj = game_files(spec, f"{split}_{name}")
            atomic_write_json(folder / "game.tw-pddl", game)
            atomic_write_json(folder / "traj_data.json", traj)
            if verify_steps <= 0 or _expert_wins(folder, verify_steps, seed=i):
                break
            if stats is not None:
                stats[task_type] = stats.get(task_type, 0) + 1
        folders.append(folder)
    return folders


def _expert_wins(folder: Path, max_steps: int, seed: int) -> bool:
    return run_expert(AlfworldEnv([folder], max_steps=max_steps, expert=True), 0, seed=seed)["won"]
