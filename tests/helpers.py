"""Small policies and environments shared by the tests."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Normal

import rlx


class MLPPolicy(rlx.Parametric):
    """Feed-forward categorical policy with a value head."""

    def __init__(self, obs_dim: int = 4, n_actions: int = 2, hidden: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh())
        self.logits = nn.Linear(hidden, n_actions)
        self.value = nn.Linear(hidden, 1)

    def forward(self, *states):
        _, obs = states
        x = self.body(obs)
        return None, rlx.ActionDistribution(Categorical(logits=self.logits(x))), self.value(x)


class GRUPolicy(rlx.Parametric):
    """Recurrent categorical policy with a value head; state [B, H]."""

    def __init__(self, obs_dim: int = 4, n_actions: int = 2, hidden: int = 16) -> None:
        super().__init__()
        self.hidden = hidden
        self.cell = nn.GRUCell(obs_dim, hidden)
        self.logits = nn.Linear(hidden, n_actions)
        self.value = nn.Linear(hidden, 1)

    def forward(self, *states):
        h, obs = states
        if h is None:
            h = torch.zeros(obs.shape[0], self.hidden)
        h = self.cell(obs, h)
        return h, rlx.ActionDistribution(Categorical(logits=self.logits(h))), self.value(h)


class GaussianPolicy(rlx.Parametric):
    """Feed-forward Gaussian policy for Box actions."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.mean = nn.Linear(obs_dim, act_dim)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, *states):
        _, obs = states
        mean = self.mean(obs)
        return None, rlx.ActionDistribution(Normal(mean, self.log_std.exp().expand_as(mean)))


class CountingEnv(gym.Env):
    """Observation is [step, env_id]; episodes last ``length`` steps; reward = step + 1.

    Deterministic, so tests can predict every field. Ends by termination unless
    ``truncate`` is set.
    """

    def __init__(self, length: int = 3, env_id: int = 0, truncate: bool = False) -> None:
        self.length, self.env_id, self.truncate = length, env_id, truncate
        self.observation_space = spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0, self.env_id], np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.t += 1
        end = self.t >= self.length
        obs = np.array([self.t, self.env_id], np.float32)
        return obs, float(self.t), end and not self.truncate, end and self.truncate, {}


class ReusingEnv(gym.Env):
    """Returns the *same* numpy array from every reset and step, mutated in place."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1e6, 1e6, (3,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.buffer = np.zeros(3, np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.buffer[:] = 0
        return self.buffer, {}

    def step(self, action):
        self.t += 1
        self.buffer[:] = self.t
        return self.buffer, 1.0, self.t >= 5, False, {}


class DictTupleEnv(gym.Env):
    """Dict observations and a Tuple(Discrete, Box) action; reward prefers action 1 and a≈0.5."""

    def __init__(self, length: int = 6) -> None:
        self.observation_space = spaces.Dict(
            {
                "position": spaces.Box(-1.0, 1.0, (2,), np.float64),
                "mode": spaces.Discrete(3),
            }
        )
        self.action_space = spaces.Tuple((spaces.Discrete(2), spaces.Box(-1.0, 1.0, (1,))))
        self.length = length
        self.t = 0

    def _obs(self):
        return {"position": self.np_random.uniform(-1, 1, 2), "mode": int(self.t % 3)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        choice, amount = action
        assert self.action_space.contains(action), action
        self.t += 1
        reward = float(choice) - abs(float(amount[0]) - 0.5)
        return self._obs(), reward, False, self.t >= self.length, {}


class DictTuplePolicy(rlx.Parametric):
    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(3, 4)
        self.body = nn.Sequential(nn.Linear(2 + 4, hidden), nn.Tanh())
        self.choice = nn.Linear(hidden, 2)
        self.mean = nn.Linear(hidden, 1)
        self.log_std = nn.Parameter(torch.zeros(1))
        self.value = nn.Linear(hidden, 1)

    def forward(self, *states):
        _, obs = states
        x = torch.cat([obs["position"], self.embed(obs["mode"])], -1)
        x = self.body(x)
        mean = self.mean(x)
        dist = rlx.ActionDistribution(
            Categorical(logits=self.choice(x)), Normal(mean, self.log_std.exp().expand_as(mean))
        )
        return None, dist, self.value(x)


def counting_vec(lengths: list[int], truncate: bool = False, mode: str = "SameStep"):
    """A SyncVectorEnv of CountingEnvs with the given episode lengths and autoreset mode."""
    fns = [lambda n=n, i=i: CountingEnv(n, i, truncate) for i, n in enumerate(lengths)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode(mode))


class CountingVectorEnv(gym.vector.VectorEnv):
    """A numpy vector env in next-step autoreset mode without reset_mask (like CartPole's).

    Observation [step, env_id]; env i's episodes last ``lengths[i]`` steps and terminate;
    reward = step. Returns the *same* observation array every call (mutated in place), as
    fast vector environments may.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, lengths: list[int]) -> None:
        self.num_envs = len(lengths)
        self.lengths = np.array(lengths)
        self.single_observation_space = spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.t = np.zeros(self.num_envs, np.int64)
        self.prev_done = np.zeros(self.num_envs, bool)
        self.obs = np.zeros((self.num_envs, 2), np.float32)
        self.obs[:, 1] = np.arange(self.num_envs)

    def reset(self, *, seed=None, options=None):
        self.t[:] = 0
        self.prev_done[:] = False
        self.obs[:, 0] = 0
        return self.obs, {}

    def step(self, actions):
        self.t += 1
        self.t[self.prev_done] = 0
        reward = self.t.astype(np.float64)
        terminated = self.t >= self.lengths
        terminated[self.prev_done] = False
        self.obs[:, 0] = self.t
        self.prev_done = terminated.copy()
        return self.obs, reward, terminated, np.zeros(self.num_envs, bool), {}


def cpu_capability() -> str:
    """The kernel path torch's CPU operators take here (``ATEN_CPU_CAPABILITY`` chooses
    another): learning runs round differently on each, so a failure must name it."""
    chosen = os.environ.get("ATEN_CPU_CAPABILITY")
    path = torch.backends.cpu.get_cpu_capability()
    return f"{path} (ATEN_CPU_CAPABILITY={chosen})" if chosen else f"{path} (the processor's own)"
