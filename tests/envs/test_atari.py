"""Atari through the public API: make_atari's preprocessing, and DQN learning from a
FrameReplay that keeps each 84x84 frame once."""

from __future__ import annotations

import sys

import pytest
import torch

import rlx
from rlx.algos.dqn import DQN
from rlx.algos.dqn.dqn import DQNConfig
from rlx.envs.atari import make_atari
from rlx.policies import QNetwork
from rlx.policies.random import RandomPolicy
from rlx.replay import ReplayBuffer
from rlx.replay.frames import FrameReplay


@pytest.fixture
def atari() -> None:
    """Skip, saying why, where the optional Atari packages are missing (CI installs them)."""
    pytest.importorskip("ale_py", reason="Atari is optional: pip install 'rlx[atari]'")
    pytest.importorskip("cv2", reason="Atari preprocessing needs OpenCV: pip install 'rlx[atari]'")


def storage_bytes(buffer: ReplayBuffer) -> int:
    """Bytes of the buffer's storage tensors (the frames, for a FrameReplay, included)."""
    tensors = [x for x in vars(buffer).values() if isinstance(x, torch.Tensor)]
    tensors += [x for x in buffer.storage.values() if isinstance(x, torch.Tensor)]
    return sum(x.untyped_storage().nbytes() for x in tensors)


def test_make_atari_gives_stacked_84x84_uint8_frames(atari):
    agent = rlx.Agent(make_atari("ALE/Pong-v5"), num_envs=2, seed=0)
    assert agent.observation_space.shape == (4, 84, 84)
    with torch.no_grad():
        rollout = agent(RandomPolicy(agent.action_space)).steps(20)
    obs = rollout.observations
    assert obs.dtype == torch.uint8 and obs.shape == (20, 2, 4, 84, 84)
    assert (obs[0] == obs[0, :, -1:]).all()  # a reset pads with copies of its frame
    assert torch.equal(rollout.next_observations[:, :, :-1], obs[:, :, 1:])  # stacks roll
    assert obs.float().std() > 0  # the screen, not a blank


def test_dqn_learns_on_pong_from_a_frame_replay(atari):
    agent = rlx.Agent(make_atari("ALE/Pong-v5"), num_envs=2, seed=0)
    policy = QNetwork(agent.observation_space, agent.action_space)  # Nature CNN
    config = DQNConfig(
        num_envs=2, steps=4, batch_size=32, buffer_size=1_000, learning_starts=100,
        frame_stack=4, target_update_interval=10, lr=1e-4,
    )  # fmt: skip
    dqn = DQN(agent, policy, config)
    assert isinstance(dqn.replay, FrameReplay)
    before = [p.detach().clone() for p in policy.parameters()]
    while agent.total_steps < 300:
        info = dqn.iteration()
    assert info["Updates"] == dqn.updates == 25  # (300 - 100) steps / 8 per iteration
    assert all(torch.isfinite(torch.tensor(info[k])) for k in ("Loss", "QMean", "GradNorm"))
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))

    batch = dqn.replay.sample(32)
    for stacks in (batch.observations, batch.next_observations):
        assert stacks.dtype == torch.uint8 and stacks.shape == (1, 32, 4, 84, 84)
    # about one 84x84 frame per transition (5% spare), against eight for whole stacks
    per_transition = storage_bytes(dqn.replay) / config.buffer_size
    assert 84 * 84 < per_transition < 1.1 * 84 * 84


def test_clear_errors_without_ale_py_and_for_unknown_games(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "ale_py", None)  # as if not installed
        with pytest.raises(ImportError, match=r"need ale-py.*pip install 'rlx\[atari\]'"):
            make_atari("ALE/Pong-v5")
    pytest.importorskip("ale_py", reason="Atari is optional: pip install 'rlx[atari]'")
    with pytest.raises(ValueError, match="Did you mean ALE/Pong-v5"):
        make_atari("ALE/Pongg-v5")
