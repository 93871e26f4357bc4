import functools
import os
import signal

import pytest

from tetrad.agents.alfworld_env import AlfworldEnv
from tetrad.agents.pool import CRASHED_OBSERVATION, EnvPool
from tetrad.core.errors import UserError


@pytest.fixture(scope="module")
def pool(alfworld_games):
    _, folders, _ = alfworld_games
    with EnvPool(functools.partial(AlfworldEnv, folders, max_steps=20), n_envs=4, n_workers=2, timeout=60) as p:
        yield p


def test_pool_matches_single_process_env(pool, alfworld_games):
    _, folders, _ = alfworld_games
    single = AlfworldEnv(folders, max_steps=20)
    reset = pool.reset([{"game": i} for i in range(4)])
    for i, (obs, info) in enumerate(reset):
        obs1, info1 = single.reset(game=i)
        assert obs == obs1 and info["admissible_commands"] == info1["admissible_commands"]
    actions = [info["admissible_commands"][0] for _, info in reset]
    actions[2] = None  # slot 2 sits this step out
    out = pool.step(actions)
    assert out[2] is None
    single.reset(game=0)
    assert out[0][0] == single.step(actions[0])[0]


def test_crashed_worker_is_restarted_and_its_episodes_fail(pool):
    pool.reset([{"game": i} for i in range(4)])
    os.kill(pool.workers[1].pid, signal.SIGKILL)  # worker 1 holds slots 1 and 3
    restarts = pool.restarts
    out = pool.step(["look"] * 4)
    assert pool.restarts == restarts + 1
    for i in (1, 3):
        obs, reward, done, info = out[i]
        assert obs == CRASHED_OBSERVATION and done and info["crashed"] and not info["won"] and reward == 0.0
    for i in (0, 2):
        assert not out[i][2] and "crashed" not in out[i][3]
    again = pool.reset([{"game": i} for i in range(4)])  # the restarted worker serves new episodes
    assert all(obs.startswith("-= Welcome") for obs, _ in again)


def test_user_errors_inside_workers_reach_the_caller(pool, tmp_path):
    with pytest.raises(UserError, match="game folder"):
        pool.reset([{"game": str(tmp_path)}] + [None] * 3)


def test_an_episode_that_crashed_at_reset_keeps_its_task_type():
    from tetrad.agents.rollout import RandomPolicy, rollout

    class CrashingEnvs:  # what the pool answers for a worker that died during reset
        n_envs = 2

        def reset(self, kwargs):
            return [(CRASHED_OBSERVATION, {"won": False, "crashed": True, "admissible_commands": []})
                    for _ in kwargs]

    episodes = rollout(CrashingEnvs(), RandomPolicy("alfworld"), [{"game": 1, "seed": 0}, {"game": 0, "seed": 0}],
                       "alfworld", game_types=["pick_and_place_simple", "pick_two_obj_and_place"])
    assert [(e.task_type, e.crashed, e.turns) for e in episodes] == [("pick_two_obj_and_place", True, []),
                                                                      ("pick_and_place_simple", True, [])]
