"""Nested data: tree_set, the indexed write across a tree (rlpyt's ``dest[idx] = src``)."""

import numpy as np
import pytest
import torch

from rlx.tree import tree_index, tree_set


def storage():
    return {"pos": torch.zeros(5, 3, 2), "parts": (torch.zeros(5, 3, dtype=torch.int64), None)}


def test_tree_set_writes_every_leaf_at_the_index_in_place():
    dest = storage()
    step = {"pos": torch.ones(3, 2), "parts": (np.array([1, 2, 3]), None)}
    assert tree_set(dest, 2, step) is dest
    assert torch.equal(dest["pos"][2], torch.ones(3, 2)) and dest["pos"].sum() == 6
    assert dest["parts"][0][2].tolist() == [1, 2, 3] and dest["parts"][0].dtype == torch.int64
    # Advanced indices and broadcasting values, as for leaf[index] = value.
    tree_set(dest, (torch.tensor([0, 4]), slice(None)), {"pos": 7.0, "parts": (5, None)})
    assert torch.equal(tree_index(dest, 4)["pos"], torch.full((3, 2), 7.0))
    assert dest["parts"][0][0].tolist() == [5, 5, 5]


def test_tree_set_names_the_leaf_that_does_not_fit_and_writes_nothing():
    dest = storage()
    bad = {"pos": torch.ones(3, 2), "parts": (torch.ones(4, dtype=torch.int64), None)}
    with pytest.raises(ValueError, match=r"tree\['parts'\]\[0\] has shape \(4,\).*\(3,\)"):
        tree_set(dest, 1, bad)
    assert dest["pos"].sum() == 0  # the leaf checked first was not written either


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"pos": torch.ones(3, 2)}, r"tree has keys \['parts', 'pos'\], the value keys \['pos'\]"),
        ({"pos": torch.ones(3, 2), "parts": (torch.ones(3),)}, r"tree\['parts'\] has 2 items"),
        ({"pos": torch.ones(3, 2), "parts": (torch.ones(3), 1)}, r"\[1\] is None"),
        (torch.ones(3), r"the value a Tensor"),
    ],
)
def test_tree_set_refuses_another_structure(value, message):
    with pytest.raises(ValueError, match=message):
        tree_set(storage(), 0, value)


def test_tree_set_writes_into_tensors_only():
    with pytest.raises(TypeError, match=r"tree\[0\] is a ndarray"):
        tree_set((np.zeros(3),), 0, (1.0,))
