"""The agents part of `tetrad demo`: generated ALFWorld games in the real engine and the shop,
played by the expert (with and without skills in its prompt) and by a random policy. The
expert's episodes use seed 0 for every game, not the seed the generator's check used, so a game
whose expert needs lucky fallback draws can be lost (5 of 6 won with seed 0)."""

from __future__ import annotations

from tetrad.core.rundir import RunDir
from tetrad.demo import DemoConfig, Section


def demo_part(run: RunDir, cfg: DemoConfig) -> Section:
    from tetrad.agents.alfworld_env import AlfworldEnv
    from tetrad.agents.alfworld_games import make_games
    from tetrad.agents.rollout import ExpertPolicy, LocalEnvs, RandomPolicy, rollout, summarize
    from tetrad.agents.shop import ShopEnv, make_catalogue
    from tetrad.agents.skills import SkillLibrary

    library = SkillLibrary.load()
    folders = make_games(run.path / "alfworld_games", 6, "valid_seen", cfg.seed)
    tasks = [{"game": i, "seed": cfg.seed} for i in range(len(folders))]
    envs = LocalEnvs([AlfworldEnv(folders, max_steps=50, expert=True)])
    expert = rollout(envs, ExpertPolicy(), tasks * 2, "alfworld", [True] * 6 + [False] * 6, library)
    rand = summarize(rollout(envs, RandomPolicy("alfworld", cfg.seed), tasks, "alfworld"))["skills_off"]
    alf = summarize(expert)

    products = make_catalogue(2000, cfg.seed)
    shop_envs = LocalEnvs([ShopEnv(products, split="valid", n_goals=50, seed=cfg.seed, expert=True)])
    shop_tasks = [{"game": g} for g in range(50)]
    shop_expert = summarize(rollout(shop_envs, ExpertPolicy(), shop_tasks, "shop"))["skills_off"]
    shop_rand = summarize(rollout(shop_envs, RandomPolicy("shop", cfg.seed), shop_tasks, "shop"))["skills_off"]

    numbers = {
        "alfworld_expert_success_skills_on": alf["skills_on"]["success"],
        "alfworld_expert_success_skills_off": alf["skills_off"]["success"],
        "alfworld_expert_steps_per_episode": alf["skills_off"]["steps_per_episode"],
        "alfworld_random_success": rand["success"],
        "alfworld_env_seconds_per_step": alf["skills_off"]["env_seconds_per_step"],
        "shop_expert_success": shop_expert["success"], "shop_expert_score": shop_expert["score"],
        "shop_random_success": shop_rand["success"], "shop_random_score": shop_rand["score"],
    }
    body = (f"Six generated valid-seen ALFWorld games (one per task type) in the real ALFWorld text engine, "
            f"and 50 goals of a generated 2,000-product shop. ALFWorld's handcoded expert won "
            f"{alf['skills_off']['success']:.0%} of the games in {alf['skills_off']['steps_per_episode']:.1f} steps "
            f"on average (it ignores the prompt, so skills on and off match); a random admissible action "
            f"won {rand['success']:.0%}. In the shop the goal-aware expert scored {shop_expert['score']:.2f} "
            f"(success {shop_expert['success']:.0%}), random {shop_rand['score']:.2f} "
            f"(success {shop_rand['success']:.0%}). SmolLM2 by prompting: docs/results/agents.md.")
    return Section("Agent environments (ALFWorld engine, shop)", body, numbers)
