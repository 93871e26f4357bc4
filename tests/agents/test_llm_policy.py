import string

import torch

from tetrad.agents.handoff import generated_turns
from tetrad.agents.llm_policy import LLMPolicy
from tetrad.agents.rollout import LocalEnvs, rollout
from tetrad.agents.shop import ShopEnv, make_catalogue
from tetrad.agents.skills import SkillLibrary
from tetrad.core.seeding import seed_everything
from tetrad.llm.models import ModelSpec
from tetrad.llm.sampling import SamplingParams

def test_llm_policy_drives_rollouts_and_keeps_token_ids():
    seed_everything(0)
    spec = ModelSpec(kind="tiny", chars=string.printable, hidden=32, layers=1, heads=2, max_positions=4096)
    policy = LLMPolicy.load(spec, SamplingParams(temperature=1.0, max_new_tokens=8, stop=["</action>"]))
    envs = LocalEnvs([ShopEnv(make_catalogue(200), split="train", n_goals=4) for _ in range(2)])
    eps = rollout(envs, policy, [{"game": 0}, {"game": 1}], "shop", [True, False], SkillLibrary.load(), max_steps=3)
    # an untrained model writes no <action> tag: every turn is invalid, penalised, and the episode runs on
    for ep in eps:
        assert len(ep.turns) == 3 and ep.n_invalid == 3 and ep.reward == -0.1 * 3 + ep.score
    assert len(policy.calls) == 3 and all(len(c) == 2 for c in policy.calls)
    first = policy.calls[0]
    assert first.texts == [t.response for t in (eps[0].turns[0], eps[1].turns[0])]
    assert first.response_ids.shape[1] <= 8 and torch.all(first.response_mask.sum(1) >= 1)
    turns, _ = generated_turns(eps, torch.zeros(2), policy.tokenizer)
    assert len(turns) == 6 and torch.all(turns.response_mask.sum(1) > 0)
