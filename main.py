"""The original rlx README's command line, e.g.:

    python main.py --algo ppo --policytype rnn --batch_size 16 --max_episode 5000 \\
        --horizon 200 --env CartPole-v0 --standardize_return

The same runs are available as ``rlx train``; see ``python main.py --help``.
"""

import sys

from rlx.cli import original_main

if __name__ == "__main__":
    sys.exit(original_main())
