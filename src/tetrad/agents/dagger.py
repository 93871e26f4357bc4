"""DAgger for the behaviour-cloned policy (Ross et al., 2011).

Expert data only shows the states the expert visits, and a policy that strays never saw what to
do there. A round plays the current policy (sampling at `dagger_temperature`, the way RL will
roll it out) on some of the training games with the expert following along: the expert tracks
the game from the actions actually taken and so labels every state the policy reaches with what
it would do there. With probability `dagger_beta` a turn executes the expert's action instead
(DAgger's mixture; 0, pure policy roll-in, is the paper's practical choice after its first,
expert-only round, which here is the expert data). The expert's label can be noise: ALFWorld's
answers "look" when its own choice is not admissible and draws a random command when its choice
repeats the last action, as it does when it plays alone.
"""

from __future__ import annotations

import random

from tetrad.agents.bc_data import BCExample
from tetrad.agents.environments import Environment, TaskSet, environment
from tetrad.agents.llm_policy import ActionScoringPolicy, action_response
from tetrad.agents.rollout import parse_action, rollout
from tetrad.core.errors import UserError
from tetrad.core.progress import progress


class ExpertLabelled:
    """A rollout policy that plays `policy` and keeps, for every prompt, the expert's action
    (`info["expert_action"]`, from environments built with `expert=True`) as a BC example; with
    probability `beta` it executes the expert's action instead of the policy's."""

    def __init__(self, policy, env: str | Environment, beta: float = 0.0, seed: int = 0):
        self.policy, self.env, self.beta = policy, environment(env), beta
        self.rng = random.Random(seed)
        self.examples: list[BCExample] = []
        self.agreed = 0

    def act(self, prompts: list[str], infos: list[dict]) -> list[str]:
        responses = self.policy.act(prompts, infos)
        for i, (prompt, info) in enumerate(zip(prompts, infos)):
            expert = info.get("expert_action")
            expert = expert and self.env.as_candidate(expert, info)
            if expert not in info["candidates"]:  # the expert has given up (None) on this episode
                continue
            self.examples.append(BCExample(prompt, expert, info["candidates"]))
            self.agreed += parse_action(responses[i]) == expert
            if self.rng.random() < self.beta:
                responses[i] = action_response(expert)
        return responses


def dagger_round(model, tok, env: str | Environment, tasks: TaskSet, games: list, skill_flags: list[bool], library,
                 *, round_index: int, seed: int, beta: float, temperature: float, n_envs: int, max_steps: int,
                 history_length: int) -> dict:
    """Play the policy at `temperature` on `games` of `tasks` (built with `expert=True`) with the
    expert labelling each state: the labelled examples and the roll-in's win rate and agreement
    with the expert."""
    seed = seed + 1000 * (round_index + 1)
    policy = ExpertLabelled(ActionScoringPolicy(model, tok, temperature=temperature, seed=seed), env, beta, seed)
    envs = tasks.envs(n_envs)
    plays = [{"game": game, "seed": seed + i} for i, game in enumerate(games)]
    episodes = []
    for start in progress(range(0, len(plays), envs.n_envs), desc=f"dagger round {round_index}"):
        wave = slice(start, start + envs.n_envs)
        episodes += rollout(envs, policy, plays[wave], env, skill_flags[wave], library, max_steps=max_steps,
                            history_length=history_length, invalid_penalty=0.0)
    return {"round": round_index, "episodes": len(episodes), "success": sum(e.won for e in episodes) / len(episodes),
            "agreement": policy.agreed / max(len(policy.examples), 1),
            "examples": [{"prompt": ex.prompt, "action": ex.action, "candidates": ex.candidates}
                         for ex in policy.examples]}


def dagger_games(train_eps: list[tuple[dict, bool]], per_round: int, round_index: int, seed: int
                 ) -> tuple[list, list[bool]]:
    """Round r's games: the next `per_round` of the training episodes' games, in a seeded order
    (cycling), each with its episode's skills flag."""
    flags: dict = {}
    for ep, flag in train_eps:
        if "game" not in ep:
            raise UserError("DAgger replays the expert episodes' games, but an episode names no 'game'")
        flags.setdefault(ep["game"], flag)
    order = sorted(flags)
    random.Random(seed).shuffle(order)
    games = [order[(round_index * per_round + i) % len(order)] for i in range(min(per_round, len(order)))]
    return games, [flags[g] for g in games]
