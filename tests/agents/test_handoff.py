import string

import pytest
import torch

from tetrad.agents.bc_data import BCExample, bc_examples, encode_examples
from tetrad.agents.handoff import generated_turns, scored_logprobs, scored_turns
from tetrad.agents.llm_policy import ActionScoringPolicy, LLMPolicy
from tetrad.agents.rollout import LocalEnvs, rollout
from tetrad.agents.shop import ShopEnv, make_catalogue, run_expert
from tetrad.agents.skills import SkillLibrary
from tetrad.core.errors import UserError
from tetrad.core.seeding import seed_everything
from tetrad.llm.models import ModelSpec, load_policy, tiny_llama
from tetrad.llm.sampling import SamplingParams
from tetrad.llm.tokenizers import word_tokenizer
from tetrad.llm.update import UpdateConfig
from tetrad.skillc.learners import GeneratingLearner, ScoringLearner


@pytest.fixture(scope="module")
def shop_scorer():
    """A fresh tiny scorer whose vocabulary covers a few shop episodes."""
    seed_everything(0)
    products = make_catalogue(200, seed=0)
    env = ShopEnv(products, split="train", n_goals=6, seed=0, expert=True)
    episodes = [run_expert(env, g, seed=g) for g in range(6)]
    examples = bc_examples(episodes, [True] * 6, SkillLibrary.load(), 2, "shop")
    tok = word_tokenizer([t for ex in examples for t in (ex.prompt, ex.response)])
    return products, tiny_llama(tok, 32, 1, 2, 4096), tok


def play_scorer(products, model, tok, temperature):
    envs = LocalEnvs([ShopEnv(products, split="train", n_goals=6, seed=0) for _ in range(2)])
    policy = ActionScoringPolicy(model, tok, temperature=temperature, seed=1)
    return rollout(envs, policy, [{"game": g, "seed": g} for g in range(4)], "shop", [True, False, True, False],
                   SkillLibrary.load(), max_steps=4)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_scoring_policy_hands_its_action_log_probs_and_the_ratio_is_one_on_policy(shop_scorer, temperature):
    products, model, tok = shop_scorer
    episodes = play_scorer(products, model, tok, temperature)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    batch = scored_turns(episodes, adv, tok)
    turns = [t for ep in episodes for t in ep.turns]
    assert len(batch) == len(turns) > 4
    # each row is the turn's prompt, the candidates it chose among and the one it took
    for ex, turn in zip(batch.examples, turns):
        assert len(ex.candidates) == len(turn.candidates) and turn.candidates[ex.target] == turn.action
    assert batch.advantages.tolist() == [float(adv[e]) for e, ep in enumerate(episodes) for _ in ep.turns]
    # the recorded log-prob is of the action among the admissible ones (not the tokens')...
    assert all(t.action_logprob > sum(t.token_logprobs) for t in turns if len(t.candidates) > 1)
    # ...and the update recomputes exactly it: ratio 1 on-policy
    with torch.no_grad():
        new = scored_logprobs(model, batch, tok.pad_token_id, temperature)
    assert torch.allclose(new, batch.old_logprobs, atol=1e-4)
    # the same function BC trains on: the expert's target in place of the action taken
    bc = encode_examples([BCExample(t.prompt, t.action, t.candidates) for t in turns], tok)
    assert [e.target for e in bc] == [e.target for e in batch.examples]


def test_scoring_learner_steps_on_policy_and_moves_the_taken_actions(shop_scorer):
    products, model, tok = shop_scorer
    model = tiny_llama(tok, 32, 1, 2, 4096)
    episodes = play_scorer(products, model, tok, 1.0)
    learner = ScoringLearner(model, tok, UpdateConfig(lr=1e-2, total_steps=2, warmup_ratio=0.0, micro_batch=3), 1.0)
    adv = torch.tensor([1.0, 1.0, 1.0, 1.0])  # every action taken gets positive credit
    batch = scored_turns(episodes, adv, tok)
    stats = learner.step(episodes, adv)
    assert stats["max_ratio_deviation"] < 1e-3 and stats["clip_frac"] == 0.0 and stats["turns"] == len(batch)
    with torch.no_grad():
        after = scored_logprobs(model, batch, tok.pad_token_id, 1.0)
    assert after.mean() > batch.old_logprobs.mean()  # their probability went up
    with pytest.raises(UserError, match="one finite advantage per episode"):
        scored_turns(episodes, torch.zeros(3), tok)


def test_generating_policy_hands_its_sampled_tokens_and_steps_on_policy():
    seed_everything(0)
    model, tok = load_policy(ModelSpec(kind="tiny", chars=string.printable, hidden=32, layers=1, heads=2,
                                       max_positions=4096))
    policy = LLMPolicy(model, tok, SamplingParams(temperature=1.0, max_new_tokens=6, stop=["</action>"]))
    envs = LocalEnvs([ShopEnv(make_catalogue(200), split="train", n_goals=4) for _ in range(2)])
    episodes = rollout(envs, policy, [{"game": 0}, {"game": 1}], "shop", [True, False], SkillLibrary.load(),
                       max_steps=2)
    rollouts, adv = generated_turns(episodes, torch.tensor([1.0, -1.0]), tok)
    assert len(rollouts) == 4 and adv.tolist() == [1.0, 1.0, -1.0, -1.0]
    # the rows are the tokens the policy sampled, turn by turn (calls are per step, episodes per row)
    sampled = {(c.texts[i], tuple(c.response_ids[i][c.response_mask[i].bool()].tolist()))
               for c in policy.calls for i in range(len(c))}
    rows = {(rollouts.texts[i], tuple(rollouts.response_ids[i][rollouts.response_mask[i].bool()].tolist()))
            for i in range(len(rollouts))}
    assert rows == sampled
    learner = GeneratingLearner(model, tok, UpdateConfig(lr=1e-3, total_steps=2, warmup_ratio=0.0), 1.0, 6)
    stats = learner.step(episodes, torch.tensor([1.0, -1.0]))
    assert stats["clip_frac"] == 0.0 and stats["turns"] == 4  # on-policy: every ratio is 1
    with pytest.raises(UserError, match="not played by a scoring policy"):
        scored_turns(episodes, torch.zeros(2), tok)
