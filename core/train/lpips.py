"""LPIPS from a network the user supplies: its pretrained weights (AlexNet / VGG features plus the learned linear
layers of Zhang et al. 2018) cannot be fetched on machines without network access, so nothing here downloads them.

A user who has them exports the metric once as TorchScript (`torch.jit.script(lpips.LPIPS(net="alex")).save(p)`,
with the `lpips` package, on a machine that has the weights) and passes the file: `main.py eval ... --lpips p`.
The module is called as `net(pred, target)` on images [B, 3, H, W] scaled to [-1, 1] and returns distances that
flatten to [B] (the `lpips` package returns [B, 1, 1, 1]).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


class LPIPSMetric:
    """A loaded perceptual-distance network; lower is better."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"LPIPS network {path} not found; export one with the `lpips` package where its weights exist "
                "(torch.jit.script(lpips.LPIPS(net='alex')).save(PATH)) and pass that file"
            )
        try:
            self.net = torch.jit.load(str(path), map_location=torch.device(device)).eval()
        except RuntimeError as e:
            raise ValueError(f"{path} is not a TorchScript module ({e}); save the LPIPS network with torch.jit") from e
        self.path = path

    @torch.no_grad()
    def __call__(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Distance per image [B] of images [B, H, W, 3] in [0, 1]; with `mask` [B, H, W, 1] both images are
        cut out onto black first (person-only)."""
        if mask is not None:
            pred, target = pred * mask, target * mask
        d = self.net(pred.permute(0, 3, 1, 2) * 2 - 1, target.permute(0, 3, 1, 2) * 2 - 1)
        return d.reshape(pred.shape[0], -1).mean(-1)
