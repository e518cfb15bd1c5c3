"""mmtok.weights: the one reader of local weights files (the perceptual loss, LPIPS and FID use it)."""

import pytest
import torch
from safetensors.torch import save_file

from mmtok.train.perceptual import PerceptualWeightsError, read_perceptual_weights
from mmtok.weights import read_state_dict


def test_safetensors_and_tensor_only_torch_files_give_the_same_flat_state_dict(tmp_path):
    state = {"features.0.weight": torch.randn(4, 3, 3, 3), "features.0.bias": torch.randn(4)}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "checkpoint.pth")  # a trainer's wrapper is unwrapped
    for name in ("w.safetensors", "checkpoint.pth"):
        loaded = read_state_dict(tmp_path / name)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_anything_but_a_flat_tensor_mapping_is_refused(tmp_path):
    torch.save({"weight": torch.zeros(2), "step": 3}, tmp_path / "mixed.pth")
    with pytest.raises(ValueError, match="flat state dict of tensors"):
        read_state_dict(tmp_path / "mixed.pth")
    with pytest.raises(PerceptualWeightsError, match="flat state dict of tensors"):  # the loss's own error type
        read_perceptual_weights(tmp_path / "mixed.pth")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        read_state_dict(tmp_path / "absent.safetensors")
