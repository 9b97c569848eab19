"""Remembered parameter lists: walking a module's submodules in Python costs more than
per-step helpers such as target-network updates and :func:`rlx.frozen` on small
networks. A list is kept until any module registers a parameter, buffer or submodule
(torch's global registration hooks, installed on the first call, not on import)."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.nn.modules import module as _module

_version = 0
_installed = False
_LISTED: weakref.WeakKeyDictionary[torch.nn.Module, tuple] = weakref.WeakKeyDictionary()


def _structure_changed(*_: Any) -> None:
    global _version
    _version += 1


def structure_version() -> int:
    """A number that changes whenever any module registers a parameter, buffer or
    submodule (from the first call on): a key for caches of a module's structure."""
    global _installed
    if not _installed:
        _module.register_module_parameter_registration_hook(_structure_changed)
        _module.register_module_buffer_registration_hook(_structure_changed)
        _module.register_module_module_registration_hook(_structure_changed)
        _installed = True
        _structure_changed()
    return _version


def parameters_and_buffers(
    module: torch.nn.Module,
) -> tuple[tuple[torch.nn.Parameter, ...], tuple[torch.Tensor, ...]]:
    """``(tuple(module.parameters()), tuple(module.buffers()))``, listed again only after
    a parameter, buffer or submodule was registered somewhere."""
    version = structure_version()
    seen = _LISTED.get(module)
    if seen is not None and seen[0] == version:
        return seen[1], seen[2]
    params, buffers = tuple(module.parameters()), tuple(module.buffers())
    _LISTED[module] = (version, params, buffers)
    return params, buffers
