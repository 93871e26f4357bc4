"""A WebShop-style shop: generated catalogue, instructions, BM25 search, page flow, reward, expert.

WebShop itself (1.18M scraped products, a Java search index) cannot be installed offline, so the
shop is generated: `make_catalogue(n, seed)` writes products of six categories, each with a
product type, brand, 2-4 attributes from its category's list, option groups (size, colour,
flavour, ...) and a price. `make_goals` turns sampled target products into instructions as
WebShop does ("i need a wireless noise cancelling headphones in black, and price lower than
60.00 dollars"): some of the target's attributes, one value of each option group, a price bound
above its price.

Page flow and action syntax follow WebShop's text mode:

    search page   search[<query>]
    results       click[<asin>], click[next >], click[< prev], click[back to search]
    item page     click[<option value>], click[description], click[buy now], click[< prev], ...
    description   click[< prev], click[back to search]

Observations are the page's text with WebShop's " [SEP] " separators. Search ranks products by
BM25 (`rank_bm25.BM25Okapi`) over title, category, type and attributes; 10 results a page, 50 at
most, as WebShop's engine returns.

Reward is WebShop's `get_reward`: (attributes matched + options matched + price within bound) /
(attributes + options + 1), times the type factor r_type in {0, 0.1, 0.5, 1}; success is reward
1.0. WebShop finds nouns with spaCy to compare the bought title with the goal's product name;
here the words of the goal's product type stand in for those nouns (the generated titles contain
the type verbatim), and attributes/options match exactly rather than by fuzzy ratio (generated
values are spelled one way).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tetrad.agents.environments import Environment, TaskSet
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json

SHOP_PROMPT = """You are an expert autonomous agent operating in the WebShop e-commerce platform.
Your task is to: {task}
{skill_context}Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_count} observations and the corresponding actions you took:
{action_history}
Your notes: {notes}
You are now at step {current_step} and your current observation is: {current_observation}
Your admissible actions of the current situation are: [{admissible_actions}].

Now it's your turn to take an action. Think briefly inside <think> </think>, then give exactly one admissible action inside <action> </action>, e.g. <action>search[red running shoes]</action> or <action>click[buy now]</action>."""
SEARCH = "search[<query>]"  # the search page's one command: any non-empty query
MAX_STEPS = 15  # WebShop's episode limit
SCORE_PARTS = ("r_type", "r_att", "r_option", "r_price")

COLORS = ["black", "white", "navy blue", "grey", "red", "beige", "green", "pink", "brown", "purple"]
CATEGORIES: dict[str, dict[str, Any]] = {
    "fashion": {
        "types": ["t-shirt", "hoodie", "summer dress", "denim jeans", "rain jacket", "polo shirt"],
        "attributes": ["machine wash", "cotton", "slim fit", "long sleeve", "short sleeve", "button closure",
                       "relaxed fit", "moisture wicking"],
        "options": {"size": ["x-small", "small", "medium", "large", "x-large", "xx-large"], "color": COLORS},
        "price": (9.0, 80.0)},
    "shoes": {
        "types": ["running shoes", "canvas sneakers", "hiking boots", "beach sandals", "house slippers"],
        "attributes": ["rubber sole", "non slip", "memory foam", "lace up", "water resistant", "lightweight",
                       "arch support"],
        "options": {"shoe size": ["6", "7", "8", "9", "10", "11", "12"], "color": COLORS},
        "price": (15.0, 150.0)},
    "beauty": {
        "types": ["shampoo", "face cream", "lipstick", "hair oil", "body wash", "sunscreen lotion"],
        "attributes": ["paraben free", "cruelty free", "long lasting", "natural ingredients", "sulfate free",
                       "sensitive skin", "fragrance free"],
        "options": {"scent": ["lavender", "coconut", "citrus", "rose", "unscented"],
                    "volume": ["1.7 fl oz", "3.4 fl oz", "8 fl oz", "16 fl oz"]},
        "price": (4.0, 60.0)},
    "electronics": {
        "types": ["wireless headphones", "bluetooth speaker", "phone case", "charging cable", "smart watch",
                  "computer mouse"],
        "attributes": ["noise cancelling", "fast charging", "waterproof", "long battery life", "usb c",
                       "high definition", "easy install"],
        "options": {"color": COLORS},
        "price": (8.0, 200.0)},
    "grocery": {
        "types": ["protein bars", "coffee beans", "green tea", "trail mix", "dark chocolate", "granola"],
        "attributes": ["gluten free", "low sugar", "organic", "keto friendly", "high protein", "non gmo",
                       "vegan"],
        "options": {"flavor": ["vanilla", "chocolate", "peanut butter", "original", "honey", "mint"],
                    "pack": ["pack of 1", "pack of 3", "pack of 6", "pack of 12"]},
        "price": (3.0, 50.0)},
    "home": {
        "types": ["bed sheets", "throw pillow", "bath towel", "blackout curtains", "area rug", "storage basket"],
        "attributes": ["easy clean", "machine washable", "hypoallergenic", "living room", "super soft",
                       "fade resistant"],
        "options": {"home size": ["twin", "full", "queen", "king"], "color": COLORS},
        "price": (12.0, 150.0)},
}
BRANDS = ["acme", "nordic home", "zenith", "bluebird", "ironwood", "lumen", "pacific", "orchard", "vantage",
          "meadow", "summit", "harbor", "kinetic", "solace", "maple & co"]
SPLITS = ("train", "valid", "test")
RESULTS_PER_PAGE = 10
MAX_RESULTS = 50


@dataclass
class Product:
    asin: str
    category: str
    product_type: str
    brand: str
    title: str
    attributes: list[str]
    options: dict[str, list[str]]
    price: float
    description: str


@dataclass
class Goal:
    asin: str
    category: str
    product_type: str
    attributes: list[str]
    options: list[str]  # one value per option group of the target
    price_upper: float
    instruction: str


def option_values() -> set[str]:
    """Every value of every category's option groups ("black", "x-large", "pack of 3", ...)."""
    return {v for spec in CATEGORIES.values() for values in spec["options"].values() for v in values}


def make_catalogue(n: int = 2000, seed: int = 0) -> list[Product]:
    """`n` products, categories in turn; deterministic in `seed`."""
    if n < 1:
        raise UserError(f"the catalogue needs at least one product (got {n})")
    rng = random.Random(seed)
    products, asins = [], set()
    names = sorted(CATEGORIES)
    for i in range(n):
        category = names[i % len(names)]
        spec = CATEGORIES[category]
        ptype = rng.choice(spec["types"])
        attrs = rng.sample(spec["attributes"], rng.randint(2, 4))
        options = {g: sorted(rng.sample(vals, rng.randint(2, min(5, len(vals)))), key=vals.index)
                   for g, vals in spec["options"].items()}
        lo, hi = spec["price"]
        price = round(rng.uniform(lo, hi), 2)
        brand = rng.choice(BRANDS)
        title = f"{brand.title()} {' '.join(a.title() for a in attrs[:2])} {ptype.title()}"
        description = " ".join(f"- {a.capitalize()}." for a in attrs) + f" A {ptype} by {brand.title()}."
        while True:
            asin = "B0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8))
            if asin not in asins:
                asins.add(asin)
                break
        products.append(Product(asin, category, ptype, brand, title, attrs, options, price, description))
    return products


def goal_split(asin: str) -> str:
    """Targets are split by a hash of their asin: 80% train, 10% valid, 10% test."""
    bucket = hashlib.sha256(asin.encode()).digest()[0] % 10
    return "test" if bucket == 0 else "valid" if bucket == 1 else "train"


def make_goal(product: Product, rng: random.Random) -> Goal:
    attrs = rng.sample(product.attributes, rng.randint(1, min(3, len(product.attributes))))
    options = [rng.choice(vals) for vals in product.options.values()]
    price_upper = float(int(product.price * rng.uniform(1.1, 1.8)) + 1)
    phrase = rng.choice(["i need", "i am looking for", "i want", "find me"])
    text = (f"{phrase} {' and '.join(attrs)} {product.product_type} with {', '.join(options)}, "
            f"and price lower than {price_upper:.2f} dollars")
    return Goal(product.asin, product.category, product.product_type, attrs, options, price_upper, text)


def make_goals(products: list[Product], split: str, n: int, seed: int = 0) -> list[Goal]:
    if split not in SPLITS:
        raise UserError(f"unknown shop split '{split}' (known: {', '.join(SPLITS)})")
    pool = [p for p in products if goal_split(p.asin) == split]
    if not pool:
        raise UserError(f"no product of the catalogue falls in split '{split}'")
    rng = random.Random(f"{split}/{seed}")
    return [make_goal(rng.choice(pool), rng) for _ in range(n)]


def save_catalogue(products: list[Product], path: str | Path) -> None:
    atomic_write_json(path, [asdict(p) for p in products])


def load_catalogue(path: str | Path) -> list[Product]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"shop catalogue not found: {path}")
    try:
        rows = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"malformed shop catalogue {path}: not JSON") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"malformed shop catalogue {path}: must be a JSON list of products")
    if not rows:
        raise UserError(f"shop catalogue {path} holds no products")
    try:
        return [Product(**r) for r in rows]
    except TypeError as e:
        raise UserError(f"malformed shop catalogue {path}: {e}") from None


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class SearchEngine:
    """BM25 over each product's title, category, type and attributes."""

    def __init__(self, products: list[Product]):
        from rank_bm25 import BM25Okapi

        self.products = products
        docs = [tokenize(f"{p.title} {p.category} {p.product_type} {' '.join(p.attributes)}") for p in products]
        self.bm25 = BM25Okapi(docs)

    def search(self, query: str, k: int = MAX_RESULTS) -> list[Product]:
        tokens = tokenize(query)
        if not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
        return [self.products[i] for i in order if scores[i] > 0]


def type_reward(bought: Product, goal: Goal) -> float:
    """WebShop's r_type, with the goal's product-type words standing in for its spaCy nouns."""
    desired = set(tokenize(goal.product_type))
    title_score = len(desired & set(tokenize(bought.title))) / len(desired)
    match = bought.product_type == goal.product_type or bought.category == goal.category or title_score > 0.2
    r_type = 1.0 if match else 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type


def shop_reward(bought: Product, chosen_options: list[str], goal: Goal) -> dict[str, float]:
    """WebShop's reward of buying `bought` with `chosen_options` for `goal`, with its parts."""
    text = f"{bought.title} {bought.description}".lower()
    n_att = sum(a in bought.attributes or a in text for a in goal.attributes)
    n_opt = sum(o in chosen_options for o in goal.options)
    r_price = float(bought.price <= goal.price_upper)
    r_type = type_reward(bought, goal)
    total = r_type * (n_att + n_opt + r_price) / (len(goal.attributes) + len(goal.options) + 1)
    return {"reward": total, "r_type": r_type, "r_att": n_att / len(goal.attributes),
            "r_option": n_opt / max(len(goal.options), 1), "r_price": r_price}


@dataclass
class _Page:
    kind: str  # search | results | item | description
    query: str = ""
    page: int = 1
    results: list[Product] = field(default_factory=list)
    item: Product | None = None


class ShopEnv:
    """WebShop's page flow over a generated catalogue, with the `reset`/`step` API of `AlfworldEnv`."""

    def __init__(self, products: list[Product] | None = None, split: str = "train", n_goals: int = 500,
                 max_steps: int = MAX_STEPS, seed: int = 0, expert: bool = False):
        self.products = products if products is not None else make_catalogue(seed=seed)
        self.by_asin = {p.asin.lower(): p for p in self.products}
        self.engine = SearchEngine(self.products)
        self.goals = make_goals(self.products, split, n_goals, seed)
        self.max_steps = max_steps
        self.expert = expert
        self.goal: Goal | None = None

    def reset(self, game: int | None = None, seed: int | None = None) -> tuple[str, dict]:
        rng = random.Random(seed)
        index = rng.randrange(len(self.goals)) if game is None else game % len(self.goals)
        self.goal = self.goals[index]
        self.page = _Page("search")
        self.history: list[_Page] = []
        self.chosen: dict[str, str] = {}
        self.steps = 0
        self.done = False
        self.result: dict[str, float] = {}
        return self._observe(), self._info(won=False)

    # page rendering -------------------------------------------------------------------------
    def _observe(self) -> str:
        head = f"WebShop [SEP] Instruction: [SEP] {self.goal.instruction}"
        p = self.page
        if p.kind == "search":
            return f"{head} [SEP] Search"
        if p.kind == "results":
            start = (p.page - 1) * RESULTS_PER_PAGE
            shown = p.results[start:start + RESULTS_PER_PAGE]
            rows = " [SEP] ".join(f"{r.asin} [SEP] {r.title} [SEP] ${r.price:.2f}" for r in shown)
            nav = " [SEP] < Prev" if p.page > 1 else ""
            nav += " [SEP] Next >" if start + RESULTS_PER_PAGE < len(p.results) else ""
            return (f"{head} [SEP] Back to Search [SEP] Page {p.page} (Total results: {len(p.results)})"
                    f"{nav} [SEP] {rows if rows else 'No results.'}")
        item = p.item
        if p.kind == "item":
            opts = " [SEP] ".join(f"{group} [SEP] " + " [SEP] ".join(vals) for group, vals in item.options.items())
            chosen = ", ".join(f"{g}: {v}" for g, v in self.chosen.items()) or "none"
            return (f"{head} [SEP] Back to Search [SEP] < Prev [SEP] {opts} [SEP] {item.title} [SEP] "
                    f"Price: ${item.price:.2f} [SEP] Selected: {chosen} [SEP] Description [SEP] Buy Now")
        return f"{head} [SEP] Back to Search [SEP] < Prev [SEP] {item.description}"

    def admissible(self) -> list[str]:
        p = self.page
        if p.kind == "search":
            return [SEARCH]
        acts = ["click[back to search]"]
        if p.kind == "results":
            start = (p.page - 1) * RESULTS_PER_PAGE
            if p.page > 1:
                acts.append("click[< prev]")
            if start + RESULTS_PER_PAGE < len(p.results):
                acts.append("click[next >]")
            acts += [f"click[{r.asin.lower()}]" for r in p.results[start:start + RESULTS_PER_PAGE]]
        elif p.kind == "item":
            acts.append("click[< prev]")
            acts += [f"click[{v}]" for vals in p.item.options.values() for v in vals]
            acts += ["click[description]", "click[buy now]"]
        else:
            acts.append("click[< prev]")
        return acts

    def _info(self, won: bool) -> dict[str, Any]:
        info = {"admissible_commands": self.admissible(), "won": won, "task_type": self.goal.category,
                "instruction": self.goal.instruction, "game": self.goal.asin, "steps": self.steps,
                **({"score": self.result["reward"], **self.result} if self.result else {})}
        if self.expert:
            info["expert_action"] = None if self.done else expert_action(self)
        return info

    # actions ----------------------------------------------------------------------------------
    def step(self, action: str) -> tuple[str, float, bool, dict]:
        if self.goal is None:
            raise RuntimeError("step() before reset()")
        self.steps += 1
        reward, valid = 0.0, self._apply(action.strip())
        won = False
        if self.result:
            reward = self.result["reward"]
            won = reward == 1.0
        self.done = bool(self.result) or self.steps >= self.max_steps
        info = self._info(won)
        info["valid"] = valid
        return self._observe(), reward, self.done, info

    def _apply(self, action: str) -> bool:
        m = re.fullmatch(r"(search|click)\[(.*)\]", action, flags=re.IGNORECASE | re.DOTALL)
        if not m:
            return False
        verb, arg = m.group(1).lower(), m.group(2).strip()
        p = self.page
        if verb == "search":
            if p.kind != "search" or not arg:
                return False
            self.history.append(p)
            self.page = _Page("results", query=arg, results=self.engine.search(arg))
            return True
        target = arg.lower()
        if f"click[{target}]" not in self.admissible():
            return False
        if target == "back to search":
            self.history, self.page, self.chosen = [], _Page("search"), {}
        elif target == "< prev":
            if p.kind == "results":
                self.page = _Page("results", p.query, p.page - 1, p.results)
            else:
                self.page = self.history.pop()
                if self.page.kind == "results":
                    self.chosen = {}
        elif target == "next >":
            self.page = _Page("results", p.query, p.page + 1, p.results)
        elif p.kind == "results":
            self.history.append(p)
            self.page = _Page("item", item=self.by_asin[target])
            self.chosen = {}
        elif target == "description":
            self.history.append(p)
            self.page = _Page("description", item=p.item)
        elif target == "buy now":
            self.result = shop_reward(p.item, list(self.chosen.values()), self.goal)
        else:  # an option value
            group = next(g for g, vals in p.item.options.items() if target in vals)
            self.chosen[group] = target
        return True


def best_reward(product: Product, goal: Goal) -> float:
    """The reward buying `product` can reach when every goal option it offers is selected."""
    offered = {v for vals in product.options.values() for v in vals}
    return shop_reward(product, [o for o in goal.options if o in offered], goal)["reward"]


def expert_action(env: ShopEnv) -> str:
    """The next action of an expert that knows the goal: search for the goal's attributes and
    type, page through the results to the first product that can earn reward 1.0 (the best one
    on the last page if none can), select the goal's options, buy."""
    goal, p = env.goal, env.page
    if p.kind == "search":
        return f"search[{' '.join(goal.attributes)} {goal.product_type}]"
    if p.kind == "results":
        start = (p.page - 1) * RESULTS_PER_PAGE
        shown = p.results[start:start + RESULTS_PER_PAGE]
        if not shown:
            return "click[back to search]"
        perfect = [r for r in shown if best_reward(r, goal) == 1.0]
        if perfect:
            return f"click[{perfect[0].asin.lower()}]"
        if start + RESULTS_PER_PAGE < len(p.results):
            return "click[next >]"
        return f"click[{max(shown, key=lambda r: best_reward(r, goal)).asin.lower()}]"
    if p.kind == "description":
        return "click[< prev]"
    for value in goal.options:
        group = next((g for g, vals in p.item.options.items() if value in vals), None)
        if group is not None and env.chosen.get(group) != value:
            return f"click[{value}]"
    return "click[buy now]"


def run_expert(env: ShopEnv, game: int, seed: int = 0) -> dict[str, Any]:
    """Play goal `game` with the expert, searching as the scoring policy can (the instruction
    verbatim, `Shop.as_candidate`; it still wins every train goal of the default catalogue); the
    trajectory in the format of ALFWorld's `run_expert`, for behaviour cloning."""
    if not env.expert:
        raise ValueError("run_expert needs a ShopEnv built with expert=True")
    shop = Shop()
    obs, info = env.reset(game=game, seed=seed)
    first = {"game": game, "task_type": info["task_type"], "instruction": info["instruction"]}
    steps, done = [], False
    while not done:
        action = shop.as_candidate(info["expert_action"], info)
        steps.append({"observation": obs, "admissible_commands": info["admissible_commands"], "action": action})
        obs, _, done, info = env.step(action)
    return {**first, "won": info["won"], "score": info.get("score", 0.0), "n_steps": len(steps), "steps": steps,
            "final_observation": obs}


class WebShopAdapter:
    """The real WebShop text environment behind the `reset`/`step` API of `ShopEnv`.

    For users who have WebShop installed (it cannot be installed offline: its catalogue and Java
    search index are downloads). Pass the environment WebShop builds, e.g.
    `gym.make("WebAgentTextEnv-v0", observation_mode="text", num_products=None)`; the adapter
    uses only WebShop's documented calls: `reset(session=...) -> (obs, info)`,
    `step(action) -> (obs, reward, done, info)`, `get_available_actions() -> {"has_search_bar",
    "clickables"}` and `instruction_text`. Tested against a fake of that interface only.
    """

    def __init__(self, webshop_env: Any, max_steps: int = MAX_STEPS):
        self.env = webshop_env
        self.max_steps = max_steps
        self.steps = 0

    def _info(self, won: bool, score: float | None = None) -> dict[str, Any]:
        available = self.env.get_available_actions()
        acts = ([SEARCH] if available.get("has_search_bar") else [])
        acts += [f"click[{c.lower()}]" for c in available.get("clickables", [])]
        info = {"admissible_commands": acts, "won": won, "task_type": "webshop",
                "instruction": self.env.instruction_text, "game": None, "steps": self.steps}
        if score is not None:
            info["score"] = score
        return info

    def reset(self, game: int | None = None, seed: int | None = None) -> tuple[str, dict]:
        session = game if game is not None else (random.Random(seed).randrange(10**6) if seed is not None else None)
        obs, _ = self.env.reset(session=session)
        self.steps = 0
        return obs, self._info(won=False)

    def step(self, action: str) -> tuple[str, float, bool, dict]:
        obs, reward, done, _ = self.env.step(action)
        self.steps += 1
        done = bool(done) or self.steps >= self.max_steps
        info = self._info(won=bool(done and reward == 1.0), score=float(reward) if done else None)
        return obs, float(reward), done, info


_PRICE_LIMIT = re.compile(r"price lower than (\d+(?:\.\d+)?) dollars")


def shop_notes(observation: str) -> str:
    """The price limit the instruction sets and, on a results page, the products shown within it:
    "price limit 60.00 dollars; within it on this page: b0abc, b0def".

    A policy cloned without these often bought over the limit (docs/results/agents.md): the limit
    is a number in the instruction and each price a number on the page, and the match features
    (words that recur) cannot compare numbers. The notes name the product ids within it, words
    those features mark. Computed from the observation alone (it repeats the instruction), so the
    real WebShop's pages get them too. Within means at most the limit, as the reward counts it.
    (Notes naming the instruction's options not yet selected on a product page measured worse:
    docs/results/agents.md, 2026-12-08.)"""
    limit = _PRICE_LIMIT.search(observation)
    if limit is None:
        return "no price limit"
    bound = float(limit[1])
    fields = [f.strip() for f in observation.split("[SEP]")]
    # a results row is "<id> [SEP] <title> [SEP] $<price>"
    within = [fields[i - 2].lower() for i, f in enumerate(fields)
              if i >= 2 and re.fullmatch(r"\$\d+(?:\.\d+)?", f) and float(f[1:]) <= bound
              and re.fullmatch(r"[A-Za-z0-9]+", fields[i - 2])]
    notes = f"price limit {bound:.2f} dollars"
    if " [SEP] Page " in observation:
        notes += f"; within it on this page: {', '.join(within) if within else 'none'}"
    return notes


def option_grounded(episodes: list) -> float | None:
    """The shop's `take_grounded`: the share of option clicks (`click[<value>]` for a value of
    the catalogue's option groups) whose value the instruction names. The goal names exactly one
    value per option group, so an expert scores 1.0. None without option clicks."""
    values = option_values()
    clicks = [(m.group(1), e.instruction) for e in episodes for t in e.turns
              if (m := re.fullmatch(r"click\[(.+)\]", t.action or "")) and m.group(1) in values]
    # a whole value: "large" is not named by "x-large", nor "8" by "18.00"
    named = [re.search(rf"(?<![\w.-]){re.escape(v)}(?![\w.-])", task) is not None for v, task in clicks]
    return sum(named) / len(named) if named else None


class Shop(Environment):
    """The generated shop (or WebShop through `WebShopAdapter`): reward the score, 15 steps."""

    name, prompt, reward_scale, rewarded, headline = "shop", SHOP_PROMPT, 1.0, "score", "score"
    step_cap, query_command, score_parts = MAX_STEPS, SEARCH, SCORE_PARTS

    def task_types(self) -> list[str]:
        return list(CATEGORIES)

    def tasks(self, split: str, n: int, *, games: str = "", catalogue: str = "", n_products: int = 2000,
              seed: int = 0, task_types: list[str] | None = None, expert: bool = False, max_steps: int = 50,
              generate_into=None) -> TaskSet:
        import functools

        if games:
            raise UserError("games= names ALFWorld game folders; the shop plays goals of its catalogue")
        products = load_catalogue(catalogue) if catalogue else make_catalogue(n_products, seed)
        # ALFWorld's split names, for commands that take either environment
        split = {"valid_seen": "valid", "valid_unseen": "test"}.get(split, split)
        goals = make_goals(products, split, n, seed)
        return TaskSet(functools.partial(ShopEnv, products, split=split, n_goals=n,
                                         max_steps=self.step_limit(max_steps), seed=seed, expert=expert),
                       [g.category for g in goals])

    def run_expert(self, env, game: int, seed: int = 0) -> dict[str, Any]:
        return run_expert(env, game, seed)

    def notes(self, observation: str) -> str:
        return shop_notes(observation)

    def metrics(self, episodes: list) -> dict[str, Any]:
        """`option_grounded`, the share of episodes that bought something and the mean reward
        parts of what they bought (type, attributes, options, price)."""
        bought = [e for e in episodes if e.score_parts]
        return {"option_grounded": option_grounded(episodes), "bought": len(bought) / len(episodes),
                "score_parts": {k: sum(e.score_parts.get(k, 0.0) for e in bought) / len(bought)
                                for k in SCORE_PARTS} if bought else {}}
