"""Errors that teach: each names the problem and the fix."""

import gymnasium as gym
import pytest
import torch
from helpers import MLPPolicy
from torch import nn
from torch.distributions import Categorical, Normal

import rlx


class Returns(rlx.Parametric):
    def __init__(self, make):
        super().__init__()
        self.make = make
        self.lin = nn.Linear(4, 2)

    def forward(self, *states):
        return self.make(self.lin(states[1]))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda x: rlx.ActionDistribution(Categorical(logits=x)), "returned ActionDistribution"),
        (lambda x: (None,), r"returned 1 item"),
        (lambda x: (None, Categorical(logits=x)), r"wrap it: rlx.ActionDistribution\(Categorical"),
        (lambda x: (None, x), "not an rlx.ActionDistribution"),
    ],
)
def test_wrong_forward_structure(make, message):
    agent = rlx.Agent("CartPole-v1")
    with pytest.raises(TypeError, match=message) as info:
        agent(Returns(make)).steps(3)
    assert "(next_recur_state, rlx.ActionDistribution(...), *extras)" in str(info.value)


def test_action_outside_the_space():
    agent = rlx.Agent("CartPole-v1")
    too_many = Returns(
        lambda x: (None, rlx.ActionDistribution(Categorical(logits=torch.cat([x, x + 50], -1))))
    )
    with pytest.raises(ValueError, match="outside Discrete\\(2\\).*output size match"):
        agent(too_many).steps(3)


def test_box_action_of_the_wrong_shape():
    agent = rlx.Agent("Pendulum-v1")

    class Flat(rlx.Parametric):
        def forward(self, *states):
            obs = states[1]
            return None, rlx.ActionDistribution(Normal(obs[:, 0], 1.0))

    with pytest.raises(ValueError, match=r"shape \(1,\) but Box.*needs \(1, 1\)"):
        agent(Flat()).steps(2)


def test_tuple_space_with_too_few_components():
    from helpers import DictTupleEnv

    class One(rlx.Parametric):
        def forward(self, *states):
            return None, rlx.ActionDistribution(
                Categorical(logits=torch.zeros(states[1]["mode"].shape[0], 2))
            )

    with pytest.raises(ValueError, match="Tuple action space has 2 parts"):
        rlx.Agent(DictTupleEnv())(One()).steps(2)


def test_evaluating_with_a_policy_for_other_observations():
    cartpole = rlx.Agent("CartPole-v1")
    with torch.no_grad():
        r = cartpole(MLPPolicy(4)).episode(10, dry=True)
    with pytest.raises(
        ValueError,
        match=r"observations \(per-step shape \[4\]\).*another environment|other observations",
    ):
        cartpole(MLPPolicy(obs_dim=6, n_actions=3)).evaluate(r)


def test_unknown_environment_id_suggests_close_names():
    with pytest.raises(ValueError, match="unknown environment id 'CartPole-v9'.*CartPole-v1"):
        rlx.Agent("CartPole-v9")
    with pytest.raises(ValueError, match="import the package"):
        rlx.Agent("NoSuchThingAtAll-v0")


def test_bad_agent_arguments():
    with pytest.raises(ValueError, match="num_envs must be at least 1"):
        rlx.Agent("CartPole-v1", num_envs=0)
    with pytest.raises(ValueError, match="several"):
        rlx.Agent(gym.make("CartPole-v1"), num_envs=3)
    with pytest.raises(TypeError, match="cannot make an environment"):
        rlx.Agent(42)
    with pytest.raises(ValueError, match="grad_clip"):
        rlx.Agent("CartPole-v1", grad_clip=-1.0)
    with pytest.raises(TypeError, match="Parametric"):
        rlx.Agent("CartPole-v1")(lambda s, o: None)
    with pytest.raises(ValueError, match="at least 1"):
        rlx.Agent("CartPole-v1")(MLPPolicy()).steps(0)


def test_unsupported_space():
    class TextEnv(gym.Env):
        observation_space = gym.spaces.Text(5)
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(TypeError, match="FlattenObservation"):
        rlx.Agent(TextEnv())


def test_2d_boolean_mask_points_to_vectorize():
    r = rlx.Agent("CartPole-v1")(MLPPolicy()).episode(5)
    with pytest.raises(IndexError, match="vectorize"):
        r[r.valid]


def test_recurrent_state_with_the_batch_second_is_explained():
    class TorchGRU(rlx.Parametric):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 8)
            self.head = nn.Linear(8, 2)

        def forward(self, *states):
            h, obs = states
            out, h = self.gru(obs.unsqueeze(0), h)  # h is [layers, B, H]
            return h, rlx.ActionDistribution(Categorical(logits=self.head(out[0])))

    with pytest.raises(ValueError, match=r"batch first.*transpose\(0, 1\)"):
        rlx.Agent("CartPole-v1", num_envs=3)(TorchGRU()).steps(2)
