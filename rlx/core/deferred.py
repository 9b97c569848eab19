"""``Deferred``: a value computed when first read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.distributions import Distribution


class Deferred:
    """A value computed on first use, once, under the gradient mode and distribution
    validation setting in force when the ``Deferred`` was made.

    Rollouts hold log-probs, entropy and bootstrap extras this way, so that an update
    that never reads them does not pay for them. With ``params``, reading it after any
    of those parameters changed in place (an optimiser step) raises instead of
    returning values of another policy.
    """

    __slots__ = ("fn", "grad", "validate", "value", "done", "params", "versions")

    def __init__(
        self,
        fn: Callable[[], Any],
        params: tuple[torch.Tensor, ...] = (),
        grad: bool | None = None,
    ) -> None:
        self.fn = fn
        self.grad = torch.is_grad_enabled() if grad is None else grad
        self.validate = Distribution._validate_args
        self.done = False
        self.value: Any = None
        self.params = params
        self.versions = [p._version for p in params]

    def __call__(self) -> Any:
        if not self.done:
            if any(p._version != v for p, v in zip(self.params, self.versions, strict=True)):
                raise RuntimeError(
                    "an evaluated rollout computes next_others (the bootstrap extras) when "
                    "they are first needed, and here that is after the policy's parameters "
                    "changed (an optimizer step): they would not match the rest of the "
                    "evaluation. Read rollout.next_others (or call gae/vtrace/"
                    "nstep_returns) before stepping, or evaluate the rollout again."
                )
            saved = Distribution._validate_args
            Distribution._validate_args = self.validate
            try:
                with torch.set_grad_enabled(self.grad):
                    self.value = self.fn()
            finally:
                Distribution._validate_args = saved
            self.done, self.fn, self.params = True, None, ()
        return self.value

    def then(self, fn: Callable[[Any], Any]) -> Deferred:
        """``fn`` of this value, itself deferred (under this value's gradient mode)."""
        return Deferred(lambda: fn(self()), grad=self.grad)
