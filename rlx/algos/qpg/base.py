"""What the Q-function policy gradients share: an actor (the policy) and a critic of
``n`` Q-functions, each with its optimizer and a target copy that follows by Polyak
averaging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rlx.algos.config import AT_LEAST_ONE, DISCOUNT, NON_NEGATIVE, POSITIVE, option
from rlx.algos.offpolicy import OffPolicyAlgorithm, OffPolicyConfig
from rlx.algos.target import TargetNetwork
from rlx.core.agent import Agent
from rlx.core.optim import adam, minimize
from rlx.core.parametric import Parametric
from rlx.core.rollout import Rollout
from rlx.policies.continuous import Critic, RecurrentCritic
from rlx.replay.sequence import SequenceReplay, sequence_priority
from rlx.schedules import Schedule

SEQUENCES = "the replay cuts and stores sequences of this shape"


@dataclass
class QPGConfig(OffPolicyConfig):
    lr: float | Schedule = option(3e-4, POSITIVE)
    """Actor learning rate (schedule)."""
    critic_lr: float | Schedule | None = option(None, POSITIVE)
    """Critic learning rate (schedule; None: the actor's)."""
    tau: float | Schedule = option(0.005, DISCOUNT)
    """Polyak averaging rate of the target networks (schedule)."""
    batch_size: int | Schedule = option(256, AT_LEAST_ONE)
    buffer_size: int = option(1_000_000, AT_LEAST_ONE)
    learning_starts: int = option(100, NON_NEGATIVE)
    grad_clip: float | Schedule | None = option(None, POSITIVE)
    critics: int = option(2, fixed="the critic is built with this many Q-functions")
    """Q-functions in the critic (clipped double Q takes their minimum)."""
    critic_hidden: int = option(256, fixed="the critic is built with layers this wide")
    """Width of the ready critic's two hidden layers."""
    sequence_length: int | None = option(None, fixed=SEQUENCES)
    """Recurrent actors: learn from replayed sequences of this many steps (each with its
    stored recurrent state) instead of single transitions; None: transitions."""
    burn_in: int = option(0, fixed=SEQUENCES)
    """Sequence steps that only refresh the actor's stored recurrent state (and warm a
    recurrent critic's)."""
    recurrent_critic: bool = False
    """Use a :class:`~rlx.policies.RecurrentCritic` of ``critic_hidden`` units as the
    ready critic (needs ``sequence_length``)."""


class QPGAlgorithm(OffPolicyAlgorithm):
    """Base of DDPG, TD3 and SAC. ``policy`` is the actor; ``critic`` (default: a ready
    :class:`~rlx.policies.Critic`) is called as ``critic(obs, actions) -> [n, ...]``, or,
    when it has ``recurrent = True`` (:class:`~rlx.policies.RecurrentCritic`), on whole
    sample sequences as ``critic(obs, actions, starts)``."""

    config: QPGConfig

    def __init__(self, agent: Agent, policy: Parametric, config: QPGConfig,
                 critic: nn.Module | None = None) -> None:  # fmt: skip
        super().__init__(agent, policy, config)
        self.device = next(iter(policy.parameters())).device
        if critic is None:
            h = config.critic_hidden
            cls, hidden = (RecurrentCritic, h) if config.recurrent_critic else (Critic, (h, h))
            critic = cls(agent.observation_space, agent.action_space, hidden, config.critics)
            critic = critic.to(self.device)
        if getattr(critic, "recurrent", False) and config.sequence_length is None:
            raise ValueError(
                f"{type(critic).__name__} is recurrent and learns from sequences, but "
                f"{self.name} is set to learn from single transitions. Set sequence_length "
                "(e.g. 20, with burn_in 10), or use a feed-forward critic."
            )
        self.critic = critic
        self.critic_target = TargetNetwork(critic)
        self.critic_optimizer = adam(critic.parameters(), lr=self.critic_learning_rate())
        space = agent.action_space
        if hasattr(space, "low"):  # Box bounds, for noise and clipping
            self.low = torch.as_tensor(space.low, dtype=torch.float32, device=self.device)
            self.high = torch.as_tensor(space.high, dtype=torch.float32, device=self.device)

    def critic_learning_rate(self) -> float:
        return float(self.setting("lr" if self.config.critic_lr is None else "critic_lr"))

    def set_learning_rates(self) -> None:
        super().set_learning_rates()
        for group in self.critic_optimizer.param_groups:
            group["lr"] = self.critic_learning_rate()

    @property
    def acts_randomly_first(self) -> bool:  # type: ignore[override]
        # A recurrent actor acts from the start: the sequences must carry its states.
        return self.config.sequence_length is None

    def make_replay(self) -> Any:
        c = self.config
        if c.sequence_length is None:
            return super().make_replay()
        return SequenceReplay(  # one step more than learned from: the last one's next step
            c.buffer_size, c.sequence_length + 1, burn_in=c.burn_in, prioritized=c.prioritized,
            alpha=self.setting("priority_alpha"), beta=self.setting("priority_beta"),
            device=c.replay_device, states=None,
        )  # fmt: skip

    def evaluate_actor(
        self, actor: Parametric, batch: Rollout, actions: str, now: bool = True,
        then: bool = True,
    ) -> tuple[Rollout | None, Rollout | None]:  # fmt: skip
        """``actor`` evaluated (``actions`` as for ``evaluate``) at the steps an update
        learns from (``now``) and at their next observations (``then``): ``batch`` and
        ``batch.shifted()`` for transitions; for a sequence, one evaluation after the
        burn-in, without its last step and without its first."""
        bound = self.agent(actor)
        if self.config.sequence_length is None:
            return (bound.evaluate(batch, actions=actions) if now else None,
                    bound.evaluate(batch.shifted(), actions=actions) if then else None)  # fmt: skip
        full = bound.evaluate(batch, burn_in=self.config.burn_in, actions=actions)
        return full[:-1], full[1:]

    def learning_steps(self, batch: Rollout) -> tuple[Rollout, torch.Tensor, torch.Tensor | None]:
        """The steps an update learns from, their bootstrap discount, and which of them
        count (None: all): for a sequence, the steps after the burn-in but the last,
        those valid and whose next row continues the same episode."""
        if self.config.sequence_length is None:
            return batch, batch.discounts, None
        steps, following = batch[self.config.burn_in : -1], batch[self.config.burn_in + 1 :]
        mask = steps.valid & following.valid & ~following.starts
        return steps, torch.full_like(steps.rewards, self.setting("gamma")), mask

    def q(self, critic: nn.Module, batch: Rollout, at: Rollout, actions: torch.Tensor | None,
          then: bool = False) -> torch.Tensor:  # fmt: skip
        """``critic``'s Q-values at the learned steps ``at`` (``then``: at their next steps)
        for ``actions`` there (None for Discrete actions: every action's). A recurrent
        critic reads the whole sequence ``batch`` (stored actions elsewhere), sliced after."""
        if not getattr(critic, "recurrent", False):
            return critic(at.observations, actions)
        first = self.config.burn_in + (1 if then else 0)
        last = len(batch) if then else len(batch) - 1
        if actions is not None:
            stored = batch.actions.to(actions.dtype)
            actions = torch.cat([stored[:first], actions, stored[last:]])
        return critic(batch.observations, actions, batch.starts)[:, first:last]

    def td(self, batch: Rollout) -> tuple[torch.Tensor, torch.Tensor, Rollout, torch.Tensor | None]:
        """The critic's Q-values ``[n, T, N]`` at the learned steps (with gradient), their
        targets (without), those steps and their mask (:meth:`learning_steps`)."""
        raise NotImplementedError(f"{type(self).__name__} must define td(batch).")

    def critic_loss(
        self, q: torch.Tensor, target: torch.Tensor, batch: Rollout, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Half the squared errors of every Q-function ``q`` (``[n, T, N]``) to ``target``
        over the steps in ``mask`` (all when None), weighted by the replay sample
        ``batch``'s importance weights; and the errors."""
        errors = q - target
        squared = batch.weights * errors.pow(2)
        if mask is None:
            return 0.5 * squared.mean(dim=(1, 2)).sum(), errors
        return 0.5 * (squared * mask).sum(dim=(1, 2)).sum() / mask.sum().clamp(min=1), errors

    def batch_loss(self, batch: Rollout) -> torch.Tensor:
        """The critic's loss on replay sample ``batch`` (for the DEBUG log)."""
        q, target, _, mask = self.td(batch)
        return self.critic_loss(q, target, batch, mask)[0]

    def critic_step(self, q: torch.Tensor, target: torch.Tensor, batch: Rollout,
                    mask: torch.Tensor | None = None) -> dict:  # fmt: skip
        """One step on :meth:`critic_loss`; a prioritized replay's priorities become the
        first Q-function's errors. Returns the critic's loss, gradient norm and mean Q."""
        loss, errors = self.critic_loss(q, target, batch, mask)
        norm = minimize(loss, self.critic_optimizer, self.setting("grad_clip"))
        if self.config.prioritized:
            first = errors[0].detach()
            priorities = first if mask is None else sequence_priority(first, mask)
            self.replay.update_priorities(batch.indices, priorities)
        q_mean = q[0].detach().mean() if mask is None else q[0].detach()[mask].mean()
        return {"CriticLoss": loss.detach(), "CriticGradNorm": norm, "QMean": q_mean}

    def update_targets(self) -> None:
        """Move every target network towards its source by ``tau``."""
        tau = self.setting("tau")
        for target in [self.critic_target, *self.targets()]:
            target.update(tau)

    def targets(self) -> list[TargetNetwork]:
        """Target networks besides the critic's (e.g. the actor's in DDPG and TD3)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["critic"] = self.critic.state_dict()
        state["critic_target"] = self.critic_target.state_dict()
        state["critic_optimizer"] = self.critic_optimizer.state_dict()
        state["targets"] = [t.state_dict() for t in self.targets()]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        for target, saved in zip(self.targets(), state["targets"], strict=True):
            target.load_state_dict(saved)
