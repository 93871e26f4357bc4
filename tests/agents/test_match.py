import pytest
import torch

from tetrad.agents.bc_data import BCExample, encode_examples
from tetrad.agents.bc_model import action_logprobs
from tetrad.agents.environments import environment
from tetrad.agents.handoff import scored_logprobs, scored_turns
from tetrad.agents.llm_policy import ActionScoringPolicy, action_response
from tetrad.agents.match import match_codes, section_words
from tetrad.agents.rollout import Episode, Turn, prompt_sections
from tetrad.core.seeding import seed_everything
from tetrad.llm.models import ModelSpec, add_token_features, load_policy, save_policy, tiny_llama
from tetrad.llm.tokenizers import word_tokenizer

TASK = "i need a Black shirt with size large"
SKILLS = "Skills that help with this task:\n- Buy: click[buy now] once every option is chosen"
HISTORY = [("WebShop [SEP] Search", "search[black shirt]")]
OBS = "WebShop [SEP] Instruction: [SEP] ... [SEP] size [SEP] small [SEP] large [SEP] color [SEP] red [SEP] black"
CANDIDATES = ["click[black]", "click[red]", "click[large]", "click[small]", "click[buy now]"]


@pytest.fixture(scope="module")
def setup():
    seed_everything(0)
    prompt = environment("shop").build_prompt(TASK, OBS, HISTORY, CANDIDATES, SKILLS, history_length=2)
    tok = word_tokenizer([prompt] + [action_response(c) for c in CANDIDATES])
    return prompt, tok


def test_prompt_sections_are_the_parts_build_prompt_wrote(setup):
    prompt, _ = setup
    parts = prompt_sections(prompt)
    assert parts["task"] == TASK and parts["skills"].strip() == SKILLS.split("\n", 1)[1]
    assert "search[black shirt]" in parts["history"] and parts["observation"] == OBS
    alfworld_prompt = environment("alfworld").build_prompt("put a mug in cabinet", "You see a mug 1.", [], ["look"])
    assert prompt_sections(alfworld_prompt)["skills"] == ""


def test_match_codes_mark_words_whatever_their_token_form(setup):
    prompt, tok = setup
    # " black" (task, after a space, upper case there), "black" (inside click[...]) are different tokens...
    assert tok.convert_tokens_to_ids(" Black") != tok.convert_tokens_to_ids("black")
    ids = [tok(action_response(c), add_special_tokens=False)["input_ids"] for c in CANDIDATES]
    codes = match_codes(prompt, CANDIDATES, ids, tok)
    pieces = [tok.convert_ids_to_tokens(i) for i in ids]
    code = {c: dict(zip(p, k)) for c, p, k in zip(CANDIDATES, pieces, codes)}
    # ...but one word: in the task (bit 0), the history (bit 2) and the observation (bit 3)
    assert code["click[black]"]["black"] == 0b1101
    assert code["click[red]"]["red"] == 0b1000  # only on the page
    assert code["click[large]"]["large"] == 0b1001  # task and page
    assert code["click[buy now]"]["buy"] == 0b0010  # only the skill names it
    assert code["click[black]"]["["] == 0  # punctuation has no word
    assert set(section_words(prompt)[1]) >= {"click", "buy", "now"}


def test_entity_bits_tell_a_visited_receptacle_from_one_of_the_same_kind():
    history = [("You are in the middle of a room.", "go to cabinet 1"), ("The cabinet 1 is closed.", "open cabinet 1"),
               ("You open the cabinet 1. In it, you see a mug 2.", "take mug 2 from cabinet 1")]
    candidates = ["go to cabinet 1", "go to cabinet 3", "move mug 2 to cabinet 1"]
    prompt = environment("alfworld").build_prompt("put a mug in shelf", "You pick up the mug 2 from the cabinet 1.",
                                                  history, candidates, history_length=1)
    tok = word_tokenizer([prompt] + candidates)
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in candidates]
    codes = [dict(zip(tok.convert_ids_to_tokens(i), k)) for i, k in zip(ids, match_codes(prompt, candidates, ids, tok))]
    history_word, history_entity, observed_entity = 1 << 2, 1 << 6, 1 << 7
    # "cabinet" and "3" are each in the history, so the word bits cannot tell the two apart...
    assert codes[0][" cabinet"] & history_word and codes[1][" cabinet"] & history_word
    assert codes[1][" 3"] & history_word  # "Observation 3" in the history's own numbering
    # ...the entity bits can: cabinet 1 was visited, cabinet 3 never named
    assert codes[0][" cabinet"] & history_entity and codes[0][" 1"] & history_entity
    assert not codes[1][" cabinet"] & history_entity and not codes[1][" 3"] & history_entity
    # the object in hand is the one the record says was taken, and it is named where the agent stands
    assert codes[2][" mug"] & history_entity and codes[2][" 2"] & observed_entity
    assert codes[2]["move"] < 16 and codes[2][" to"] < 16  # no entity, no entity bits


def test_repeat_bits_count_the_candidate_in_the_record_of_past_actions(setup):
    history = [("You arrive at fridge 1.", "go to fridge 1"), ("You arrive at sinkbasin 1.", "go to sinkbasin 1"),
               ("You arrive at fridge 1.", "go to fridge 1"), ("You arrive at sinkbasin 1.", "go to sinkbasin 1"),
               ("You arrive at fridge 1.", "go to fridge 1")]
    candidates = ["go to fridge 1", "go to sinkbasin 1", "go to cabinet 3", "look"]
    prompt = environment("alfworld").build_prompt("put a cool mug in cabinet", "You arrive at fridge 1.", history,
                                                  candidates, history_length=1)
    tok = word_tokenizer([prompt] + candidates)
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in candidates]
    repeats = [{code >> 8 for code in codes} for codes in match_codes(prompt, candidates, ids, tok)]
    # three times, twice, never, never: one count on every token of the candidate, all from the record
    # (history_length=1 shows only the last pair)
    assert repeats == [{3}, {2}, {0}, {0}]
    # a prompt without a record (the shop's, or an episode's first turn) counts nothing
    shop_prompt, shop_tok = setup
    shop_ids = [shop_tok(action_response(c), add_special_tokens=False)["input_ids"] for c in CANDIDATES]
    assert all(code < 256 for codes in match_codes(shop_prompt, CANDIDATES, shop_ids, shop_tok) for code in codes)
    first = environment("alfworld").build_prompt("put a mug in cabinet", "You are in a room.", [], candidates)
    assert all(code < 256 for codes in match_codes(first, candidates, ids, tok) for code in codes)


def test_features_flow_through_bc_scoring_rl_and_a_saved_model(setup, tmp_path):
    prompt, tok = setup
    model = add_token_features(tiny_llama(tok, 32, 1, 2, 2048), 16)
    with torch.no_grad():
        model.token_features.weight[1:] += 1.0  # make the features matter
    ex = BCExample(prompt, "click[black]", CANDIDATES)
    plain, featured = encode_examples([ex], tok)[0], encode_examples([ex], tok, features=True)[0]
    assert plain.features is None and featured.features is not None
    with torch.no_grad():
        with_f = action_logprobs(model, [featured], tok.pad_token_id)[0]
        without = action_logprobs(model, [plain], tok.pad_token_id)[0]
    assert not torch.allclose(with_f, without)  # the codes change the scores
    # the policy that acts scores exactly what BC trains
    policy = ActionScoringPolicy(model, tok, temperature=1.0)
    out = policy.act([prompt], [{"admissible_commands": CANDIDATES}])
    chosen = CANDIDATES.index(out[0][len("<action>"):-len("</action>")])
    with torch.no_grad():
        target = encode_examples([BCExample(prompt, CANDIDATES[chosen], CANDIDATES)], tok, features=True)
        assert policy.last_action_logprobs[0] == pytest.approx(float(action_logprobs(model, target,
                                                                                     tok.pad_token_id)[0]), abs=1e-4)
    # and so does the RL update's ratio
    turn = Turn(prompt, out[0], CANDIDATES[chosen], True, "", 0.0, 0.0, 0.0, None, policy.last_action_logprobs[0],
                CANDIDATES)
    batch = scored_turns([Episode("shop", 0, 0, "fashion", TASK, True, [turn])], torch.ones(1), tok, features=True)
    with torch.no_grad():
        assert torch.allclose(scored_logprobs(model, batch, tok.pad_token_id, 1.0), batch.old_logprobs, atol=1e-4)
    # saved and loaded, the features come back
    save_policy(model, tok, tmp_path / "m")
    loaded, loaded_tok = load_policy(ModelSpec(kind="hf", path=str(tmp_path / "m")))
    assert torch.equal(loaded.token_features.weight, model.token_features.weight)
    with torch.no_grad():
        assert torch.allclose(action_logprobs(loaded, [featured], tok.pad_token_id)[0], with_f, atol=1e-5)
