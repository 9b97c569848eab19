"""Environments of the old gym API (4-value step, seed(), reset() returning the
observation): adapted with one warning, sampled like any other."""

import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces

import rlx
import rlx.envs.compat as compat
from rlx.envs.compat import OldApiEnv, as_gymnasium_space, is_old_api
from rlx.policies import MLPPolicy


class Walk:
    """A random walk in the old API: move left or right, done at +-3 or after 6 steps
    (then marked as gym's time limit did)."""

    observation_space = spaces.Box(-3.0, 3.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def seed(self, seed=None):
        self.rng = np.random.default_rng(seed)
        return [seed]

    def reset(self):
        self.x, self.t = 0.0, 0
        return np.array([self.x], dtype=np.float32)

    def step(self, action):
        self.x += 1.0 if action == 1 else -1.0
        self.t += 1
        done = abs(self.x) >= 3 or self.t >= 6
        info = {"TimeLimit.truncated": True} if self.t >= 6 and abs(self.x) < 3 else {}
        return np.array([self.x], dtype=np.float32), float(self.x), done, info


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch):
    monkeypatch.setattr(compat, "_warned", False)


def test_an_old_api_env_and_factory_sample_with_one_warning():
    assert is_old_api(Walk()) and not is_old_api(OldApiEnv(Walk()))
    with pytest.warns(UserWarning, match="old gym API") as caught:
        agent = rlx.Agent(Walk, num_envs=3, seed=0)
    assert len([w for w in caught if "old gym API" in str(w.message)]) == 1
    torch.manual_seed(0)
    policy = MLPPolicy(agent.observation_space, agent.action_space)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no further warnings while sampling
        rollout = agent(policy).steps(40)
        single = rlx.Agent(Walk(), seed=0)(policy).steps(10)
    assert rollout.shape == (40, 3) and single.shape == (10, 1)
    # Episodes end at +-3 (terminated) or after 6 steps (truncated), never both.
    ends = rollout.next_observations[..., 0].abs()
    assert bool((rollout.terminations == (ends >= 3)).all())
    assert bool((rollout.truncations & rollout.terminations).sum() == 0)
    assert bool(rollout.truncations.any()) and bool(rollout.terminations.any())
    assert agent.pop_episodes()


def test_old_api_reset_seeds_through_seed_and_step_splits_done():
    env = OldApiEnv(Walk())
    obs, info = env.reset(seed=3)
    assert info == {} and env.env.rng is not None and obs.tolist() == [0.0]
    for _ in range(5):
        _, _, terminated, truncated, _ = env.step(0 if env.env.x > 0 else 1)
    _, _, terminated, truncated, _ = env.step(1)
    assert (terminated, truncated) == (False, True)  # the time limit


def test_old_gym_spaces_are_read_by_kind_and_unknown_ones_refused():
    class Box:  # an old gym Box: same fields, another class
        low, high, dtype = np.zeros(2, np.float32), np.ones(2, np.float32), np.float32

    class Graph:
        pass

    assert as_gymnasium_space(Box()) == spaces.Box(0.0, 1.0, (2,), np.float32)
    with pytest.raises(TypeError, match="cannot read the old gym space"):
        as_gymnasium_space(Graph())
