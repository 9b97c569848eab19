"""Episode replay: whole episodes kept, padded batches sampled."""

import torch
from helpers import MLPPolicy, counting_vec

import rlx


def test_episode_replay_keeps_whole_episodes_and_samples_padded_batches():
    from rlx.replay import EpisodeReplay

    agent = rlx.Agent(counting_vec([2, 4, 3]))
    with torch.no_grad():
        r = agent(MLPPolicy(obs_dim=2)).episode(10)
    replay = EpisodeReplay(capacity=4)
    replay.add(r)
    replay.add(r)
    assert len(replay) == 4 and [len(e) for e in replay.episodes] == [3, 2, 4, 3]
    batch = replay.sample(5, generator=torch.Generator().manual_seed(0))
    picks = torch.randint(4, (5,), generator=torch.Generator().manual_seed(0)).tolist()
    lengths = torch.tensor([len(replay.episodes[i]) for i in picks])
    assert batch.shape == (int(lengths.max()), 5)
    assert torch.equal(batch.valid.sum(0), lengths)
    assert torch.equal(batch.rewards.sum(0), (lengths * (lengths + 1) / 2).float())
