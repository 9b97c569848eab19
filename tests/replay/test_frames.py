"""FrameReplay: each frame stored once, and every sample exactly what a ReplayBuffer of
whole stacks returns for the same rollouts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation
from hypothesis import given, settings
from hypothesis import strategies as st

import rlx
from rlx.policies.random import RandomPolicy
from rlx.replay import PrioritizedReplay, ReplayBuffer
from rlx.replay.frames import FrameReplay

FIELDS = ("observations", "next_observations", "actions", "rewards", "terminations",
          "truncations", "discounts", "weights")  # fmt: skip


class PixelEnv(gym.Env):
    """Random uint8 frames (all different), episodes of 1 to ``longest`` steps that end by
    termination or, 40% of the time, truncation."""

    def __init__(self, longest: int = 6, size: tuple[int, int] = (6, 5)) -> None:
        self.observation_space = spaces.Box(0, 255, size, np.uint8)
        self.action_space = spaces.Discrete(3)
        self.longest, self.size = longest, size

    def _frame(self) -> np.ndarray:
        return self.np_random.integers(0, 256, self.size, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(1, self.longest + 1))
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        truncated = end and self.np_random.random() < 0.4
        return self._frame(), float(action) + self.t, end and not truncated, truncated, {}


def pixel_agent(B: int, k: int = 4, padding: str = "reset", seed: int = 0, **env) -> rlx.Agent:
    return rlx.Agent(
        lambda: FrameStackObservation(PixelEnv(**env), k, padding_type=padding),
        num_envs=B, seed=seed,
    )  # fmt: skip


def rollouts(agents: list[rlx.Agent], count: int):
    """``count`` rollouts, taking turns between the agents, alternating ``steps(7)`` (which
    continue) and ``episode(9)`` (which start afresh and end in invalid rows)."""
    policy = RandomPolicy(agents[0].action_space)
    for i in range(count):
        agent = agents[i % len(agents)]
        with torch.no_grad():
            rollout = agent(policy).steps(7) if i % 3 else agent(policy).episode(9)
        yield rollout


def assert_same_samples(a: rlx.Rollout, b: rlx.Rollout) -> None:
    assert np.array_equal(a.indices, b.indices)
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert torch.equal(x, y), name


def allocated_bytes(buffer: ReplayBuffer) -> int:
    """Bytes of the tensors the buffer allocated: its storage and (FrameReplay) frames."""
    tensors = [*vars(buffer).values(), *buffer.storage.values()]
    return sum(x.untyped_storage().nbytes() for x in tensors if isinstance(x, torch.Tensor))


@pytest.mark.parametrize(
    "padding, n_step, B, prioritized",
    [("reset", 3, 3, False), ("zero", 3, 2, False), ("reset", 1, 1, False),
     ("reset", 3, 3, True), ("zero", 1, 2, True)],
)  # fmt: skip
def test_samples_equal_those_of_a_buffer_of_whole_stacks(padding, n_step, B, prioritized):
    # 20 steps per environment and 30 rollouts of 7 or 9 steps: the ring wraps many times;
    # two agents take turns, so rollouts also continue from another agent's last step.
    agents = [pixel_agent(B, padding=padding, seed=s) for s in (0, 1)]
    kwargs = dict(n_step=n_step, gamma=0.9, seed=1)
    whole = PrioritizedReplay(20 * B, **kwargs) if prioritized else ReplayBuffer(20 * B, **kwargs)
    frames = FrameReplay(20 * B, 4, prioritized=prioritized, spare_frames=1.0, **kwargs)
    assert isinstance(frames, PrioritizedReplay) is prioritized
    starts = 0
    for rollout in rollouts(agents, 30):
        starts += int(rollout.starts.sum())
        whole.add(rollout)
        frames.add(rollout)
        a, b = whole.sample(64), frames.sample(64)
        assert_same_samples(a, b)
        assert b.observations.dtype == torch.uint8 and b.observations.shape == (1, 64, 4, 6, 5)
        if prioritized:
            errors = torch.rand(64)
            whole.update_priorities(a.indices, errors)
            frames.update_priorities(b.indices, errors)
    assert starts > 50  # many episode starts (padded stacks) went through
    assert len(frames) == len(whole) == 20 * B


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    k=st.integers(1, 4),
    B=st.integers(1, 3),
    steps_per_env=st.integers(6, 30),
    n_step=st.integers(1, 4),
    longest=st.integers(1, 12),
    padding=st.sampled_from(["reset", "zero"]),
)
def test_any_stack_depth_capacity_and_episode_lengths(k, B, steps_per_env, n_step, longest,
                                                      padding):  # fmt: skip
    steps_per_env = max(steps_per_env, n_step + 1)
    agent = pixel_agent(B, k, padding, longest=longest)
    whole = ReplayBuffer(steps_per_env * B, n_step=n_step, seed=3)
    # spare for one extra first frame (or two, with zero padding) per step: never short
    frames = FrameReplay(steps_per_env * B, k, n_step=n_step, seed=3, spare_frames=2.0)
    for rollout in rollouts([agent], 8):
        whole.add(rollout)
        frames.add(rollout)
        assert_same_samples(whole.sample(32), frames.sample(32))


def test_each_frame_is_stored_once():
    agent = pixel_agent(2, longest=100_000, size=(84, 84))
    policy = RandomPolicy(agent.action_space)
    frames, whole = FrameReplay(400, 4), ReplayBuffer(400)
    for _ in range(6):
        with torch.no_grad():
            rollout = agent(policy).steps(50)
        frames.add(rollout)
        whole.add(rollout)
    frame = 84 * 84
    # 200 steps per environment: 200 + 4 + 5% (spare) frames, and a few bytes of the rest
    assert frame < allocated_bytes(frames) / 400 < 1.1 * frame
    assert allocated_bytes(whole) / 400 > 8 * frame  # observation and next observation
    assert torch.equal(frames.storage["valid"], whole.storage["valid"])  # nothing dropped


def test_short_episodes_drop_the_oldest_transitions_never_a_wrong_stack():
    # Episodes of 1 or 2 steps need up to twice the frames of their steps (three times
    # with zero padding); without spare slots the ring overwrites frames that the oldest
    # transitions still need, and those stop being sampled.
    for padding in ("reset", "zero"):
        agent = pixel_agent(3, padding=padding, longest=2)
        whole = ReplayBuffer(60)
        frames = FrameReplay(60, 4, spare_frames=0.0, prioritized=True)
        for rollout in rollouts([agent], 20):
            whole.add(rollout)
            frames.add(rollout)
            batch = frames.sample(200)
            slots = torch.as_tensor(batch.indices)
            stored = whole.storage["observations"].flatten(0, 1)[slots]
            stored_next = whole.storage["next_observations"].flatten(0, 1)[slots]
            assert torch.equal(batch.observations[0], stored)
            assert torch.equal(batch.next_observations[0], stored_next)
            frames.update_priorities(batch.indices, torch.rand(200))  # dropped stay dropped
        dropped = int(whole.storage["valid"].sum() - frames.storage["valid"].sum())
        assert 0 < dropped < 40


def test_a_frame_buffer_round_trips_through_a_weights_only_checkpoint(tmp_path):
    agent = pixel_agent(2)
    buffer = FrameReplay(40, 4, n_step=2, prioritized=True)
    stream = rollouts([agent], 12)
    for _ in range(6):
        buffer.add(next(stream))
    buffer.update_priorities(np.array([0, 3]), np.array([5.0, 2.0]))
    torch.save(buffer.state_dict(), tmp_path / "replay.pt")
    copy = FrameReplay(40, 4, n_step=2, prioritized=True, seed=123)
    copy.load_state_dict(torch.load(tmp_path / "replay.pt", weights_only=True))
    assert_same_samples(buffer.sample(50), copy.sample(50))
    rest = list(stream)  # adding goes on from where the checkpoint stood
    for rollout in rest:
        buffer.add(rollout)
        copy.add(rollout)
    assert_same_samples(buffer.sample(50), copy.sample(50))


def test_stacks_are_rebuilt_on_the_buffer_device():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    agent = pixel_agent(2)
    buffer = FrameReplay(40, 4, device=device, spare_frames=1.0)
    whole = ReplayBuffer(40, device=device)
    for rollout in rollouts([agent], 6):
        buffer.add(rollout)
        whole.add(rollout)
    assert buffer.frames.device.type == device and buffer.frames.dtype == torch.uint8
    batch = buffer.sample(16)
    assert batch.observations.device.type == device
    assert_same_samples(whole.sample(16), batch)


def test_clear_errors():
    policy = RandomPolicy(spaces.Discrete(2))
    with torch.no_grad():
        cartpole = rlx.Agent("CartPole-v1", seed=0)(policy).steps(5)
        stacked = pixel_agent(2, k=3)(RandomPolicy(spaces.Discrete(3))).steps(5)
    with pytest.raises(ValueError, match=r"stacks of 4 frames, \[4, H, W\].*\(4,\) per step"):
        FrameReplay(40, 4).add(cartpole)
    with pytest.raises(ValueError, match=r"stacks of 4 frames.*\(3, 6, 5\) per step"):
        FrameReplay(40, 4).add(stacked)
    not_rolling = FrameReplay(40, 3)
    stacked.next_observations = stacked.next_observations.flip(2)
    with pytest.raises(ValueError, match="roll by one frame per step"):
        not_rolling.add(stacked)
    buffer = FrameReplay(40, 4)
    buffer.add(next(rollouts([pixel_agent(2)], 1)))
    with pytest.raises(ValueError, match="stores 2 environments"):
        buffer.add(next(rollouts([pixel_agent(1)], 1)))
    with pytest.raises(ValueError, match=r"frames of shape \(6, 5\)"):
        buffer.add(next(rollouts([pixel_agent(2, size=(5, 5))], 1)))
    with pytest.raises(ValueError, match="frame_stack must be at least 1"):
        FrameReplay(40, 0)
