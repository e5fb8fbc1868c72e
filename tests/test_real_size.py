"""paco_core.testing.real_size: the guard that no tensor of a model built on the meta device is left there."""

from __future__ import annotations

import pytest
import torch

from paco_core.testing.real_size import check_no_meta_tensors


def test_a_tensor_left_on_the_meta_device_is_named():
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model = model.to_empty(device="cpu")
    check_no_meta_tensors(model)  # parameters materialised: nothing left
    model[0].frequencies = torch.zeros(2, device="meta")  # a plain tensor attribute, as rotary tables are
    with pytest.raises(RuntimeError, match=r"^0\.frequencies is still on the meta device$"):
        check_no_meta_tensors(model)
