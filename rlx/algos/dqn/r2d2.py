"""Recurrent replay distributed DQN, R2D2 (Kapturowski et al. 2019), on one machine:
a recurrent Q-network learns from replayed sequences that carry the recurrent state
stored when they were sampled, refreshed by a burn-in; n-step double-Q targets with
value rescaling; sequences prioritized by a mix of their largest and mean TD error."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from gymnasium import spaces

from rlx.algos.config import AT_LEAST_ONE, FRACTION, as_count, option
from rlx.algos.dqn.dqn import DQN, DQNConfig
from rlx.core.parametric import Parametric
from rlx.core.returns import value_rescale, value_rescale_inverse
from rlx.core.rollout import Rollout
from rlx.policies.q import QNetwork
from rlx.replay.sequence import SequenceReplay, sequence_priority
from rlx.schedules import Schedule

SEQUENCES = "the replay cuts and stores sequences of this shape"


@dataclass
class R2D2Config(DQNConfig):
    num_envs: int = option(8, AT_LEAST_ONE)
    steps: int | Schedule = option(20, AT_LEAST_ONE)
    batch_size: int | Schedule = option(32, AT_LEAST_ONE)
    """Sequences per update (schedule)."""
    sequence_length: int = option(40, fixed=SEQUENCES)
    """Steps of each sequence that are learned from."""
    burn_in: int = option(20, fixed=SEQUENCES)
    """Steps before them that only refresh the stored recurrent state."""
    stride: int | None = option(None, fixed=SEQUENCES)
    """Steps between sequence starts (default: sequence_length)."""
    n_step: int | Schedule = option(5, AT_LEAST_ONE)
    prioritized: bool = True
    priority_alpha: float | Schedule = option(0.9, FRACTION)
    priority_beta: float | Schedule = option(0.6, FRACTION)
    priority_eta: float | Schedule = option(0.9, FRACTION)
    """Sequence priority: eta * max |TD error| + (1 - eta) * mean |TD error|."""
    value_rescaling: bool = True
    """Learn h(Q) with h(x) = sign(x)(sqrt(|x| + 1) - 1) + 1e-3 x."""
    target_update_interval: int | Schedule = option(400, AT_LEAST_ONE)


class R2D2(DQN):
    """R2D2 on any recurrent policy whose first extra is the Q-values, such as
    :class:`rlx.policies.QNetwork` with ``cell="gru"``."""

    name = "r2d2"
    Config = R2D2Config
    config: R2D2Config

    @classmethod
    def default_policy(
        cls, observation_space: spaces.Space, action_space: spaces.Space, config: R2D2Config,
        kind: str = "gru", hidden: int = 64, squash: bool = False,
        previous_action_reward: bool = True,
    ) -> Parametric:  # fmt: skip
        """A recurrent Q-network: a ReLU layer of ``hidden`` units, then a GRU (LSTM for
        ``kind="lstm"``) cell of that width, which also takes the previous action
        (one-hot) and reward, as R2D1's does (``previous_action_reward=False``: not)."""
        return QNetwork(
            observation_space, action_space, hidden=(hidden,), dueling=config.dueling,
            noisy=config.noisy, cell="lstm" if kind == "lstm" else "gru",
            previous_action_reward=previous_action_reward,
        )  # fmt: skip

    def make_replay(self) -> SequenceReplay:
        c = self.config
        return SequenceReplay(
            c.buffer_size, c.sequence_length, burn_in=c.burn_in, stride=c.stride,
            prioritized=c.prioritized, alpha=self.setting("priority_alpha"),
            beta=self.setting("priority_beta"), device=c.replay_device,
        )  # fmt: skip

    acts_randomly_first = False  # the network acts (epsilon 1) so sequences carry its states

    @classmethod
    def set_exploration(cls, config: R2D2Config, acting: Parametric, step: int) -> None:
        super().set_exploration(config, acting, step)
        if step < config.learning_starts and hasattr(acting, "epsilon"):
            acting.epsilon = 1.0

    def td_loss(self, batch: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.config
        new = self.agent(self.policy).evaluate(batch, burn_in=c.burn_in)  # [length, N]
        q_taken = new.others[0].gather(-1, new.actions.long().unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            target_q = self.agent(self.target).evaluate(batch, burn_in=c.burn_in).next_others[0]
            chooser = new.next_others[0].detach() if c.double else target_q
            next_value = target_q.gather(-1, chooser.argmax(-1, keepdim=True)).squeeze(-1)
            if c.value_rescaling:
                next_value = value_rescale_inverse(next_value)
            n, gamma = as_count(self.setting("n_step")), self.setting("gamma")
            targets = new.nstep_returns(q_taken, n, gamma, next_values=next_value)
            if c.value_rescaling:
                targets = value_rescale(targets)
        valid = new.valid.to(q_taken.dtype)
        huber = torch.nn.functional.huber_loss(q_taken, targets, reduction="none") * valid
        loss = (batch.weights * (huber.sum(0) / valid.sum(0).clamp(min=1))).mean()
        eta = self.setting("priority_eta")
        priorities = sequence_priority((q_taken - targets) * valid, new.valid, eta)
        return loss, priorities, new.step_mean(q_taken)
