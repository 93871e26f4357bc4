"""A batched pool of environments in worker processes.

`EnvPool(make_env, n_envs, n_workers)` holds `n_envs` environment slots spread over
`n_workers` processes (slot i lives in worker i % n_workers); each call sends every worker the
commands for its slots at once and gathers the answers, so the workers step in parallel.

    pool = EnvPool(functools.partial(AlfworldEnv, "games/train"), n_envs=8, n_workers=2)
    results = pool.reset([{"game": 0, "seed": 1}, ...])       # [(obs, info)] per slot
    results = pool.step(["go to desk 1", ...])                 # [(obs, reward, done, info)]

A worker that dies or stops answering within `timeout` seconds is killed and started again;
the slots it held report their episode failed (`done=True`, `info["crashed"] = True`,
`info["won"] = False`) and must be reset; the other slots and the run carry on. A slot given
`None` as its action is left alone (its result is `None`), so finished episodes can sit out
while others continue. A `UserError` inside an environment (a malformed game) is raised again
in the parent.

`make_env` must be picklable (a class or a `functools.partial`), because workers start with
the `spawn` method: the parent has usually imported torch, and forking a process with torch's
thread pools is unsafe.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from typing import Any, Callable

from tetrad.core.errors import UserError

CRASHED_OBSERVATION = "The environment crashed; this episode is over."


def _worker(conn, make_env: Callable[[], Any], n_slots: int) -> None:
    envs = [make_env() for _ in range(n_slots)]
    while True:
        try:
            cmd, payload = conn.recv()
        except EOFError:
            return
        if cmd == "close":
            return
        try:
            if cmd == "reset":
                out = [None if kw is None else envs[j].reset(**kw) for j, kw in enumerate(payload)]
            elif cmd == "step":
                out = [None if a is None else envs[j].step(a) for j, a in enumerate(payload)]
            else:
                raise ValueError(f"unknown pool command {cmd}")
            conn.send(("ok", out))
        except UserError as e:
            conn.send(("user_error", str(e)))
        except Exception as e:  # a bug inside the env: report it, do not die
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


class EnvPool:
    def __init__(self, make_env: Callable[[], Any], n_envs: int, n_workers: int = 2, timeout: float = 120.0,
                 start_method: str = "spawn"):
        if n_envs < 1 or n_workers < 1:
            raise ValueError("EnvPool needs at least one environment and one worker")
        self.make_env = make_env
        self.n_envs = n_envs
        self.n_workers = min(n_workers, n_envs)
        self.timeout = timeout
        self._ctx = mp.get_context(start_method)
        self.slots = [list(range(w, n_envs, self.n_workers)) for w in range(self.n_workers)]
        self.workers: list[Any] = [None] * self.n_workers
        self.conns: list[Any] = [None] * self.n_workers
        self.restarts = 0
        for w in range(self.n_workers):
            self._start(w)

    def _start(self, w: int) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker, args=(child, self.make_env, len(self.slots[w])), daemon=True)
        proc.start()
        child.close()
        self.workers[w], self.conns[w] = proc, parent

    def _restart(self, w: int) -> None:
        proc = self.workers[w]
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=10)
        self.conns[w].close()
        self.restarts += 1
        self._start(w)

    def _call(self, cmd: str, per_slot: list[Any], crashed: Callable[[], Any]) -> list[Any]:
        if len(per_slot) != self.n_envs:
            raise ValueError(f"expected {self.n_envs} entries, one per environment slot (got {len(per_slot)})")
        results: list[Any] = [None] * self.n_envs
        sent = []
        for w, slots in enumerate(self.slots):
            payload = [per_slot[i] for i in slots]
            try:
                self.conns[w].send((cmd, payload))
                sent.append(w)
            except (BrokenPipeError, OSError):
                self._fail(w, payload, results, crashed)
        for w in sent:
            payload = [per_slot[i] for i in self.slots[w]]
            conn = self.conns[w]
            try:
                if not conn.poll(self.timeout):
                    raise TimeoutError
                status, out = conn.recv()
            except (EOFError, OSError, TimeoutError):
                self._fail(w, payload, results, crashed)
                continue
            if status == "user_error":
                raise UserError(out)
            if status == "error":
                raise RuntimeError(f"environment worker {w} failed: {out}")
            for i, r in zip(self.slots[w], out):
                results[i] = r
        return results

    def _fail(self, w: int, payload: list[Any], results: list[Any], crashed: Callable[[], Any]) -> None:
        self._restart(w)
        for i, p in zip(self.slots[w], payload):
            results[i] = None if p is None else crashed()

    def reset(self, kwargs: list[dict | None]) -> list[tuple[str, dict] | None]:
        """Reset the slots whose entry is a dict of `reset` keyword arguments; `None` skips a slot."""
        return self._call("reset", kwargs, lambda: (CRASHED_OBSERVATION, {"won": False, "crashed": True,
                                                                          "admissible_commands": []}))

    def step(self, actions: list[str | None]) -> list[tuple[str, float, bool, dict] | None]:
        """Step the slots whose action is a string; `None` skips a slot (its result is `None`)."""
        return self._call("step", actions, lambda: (CRASHED_OBSERVATION, 0.0, True,
                                                    {"won": False, "crashed": True, "admissible_commands": []}))

    def close(self) -> None:
        for w, proc in enumerate(self.workers):
            try:
                self.conns[w].send(("close", None))
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            self.conns[w].close()

    def __enter__(self) -> "EnvPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
