"""Loss functions behave as their definitions say."""

import math

import torch

from core.train.losses import acap_loss, asap_loss, l1_error, mask_loss, part_loss, psnr, ssim


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    img = torch.rand(2, 32, 32, 3)
    assert ssim(img, img).item() == torch.tensor(1.0).item() or abs(ssim(img, img).item() - 1) < 1e-5
    noisy = (img + 0.2 * torch.randn_like(img)).clamp(0, 1)
    assert ssim(noisy, img).item() < 0.9


def test_psnr_matches_its_formula_and_respects_the_mask():
    a = torch.zeros(1, 4, 4, 3)
    b = torch.full((1, 4, 4, 3), 0.1)
    assert abs(psnr(a, b).item() - 20.0) < 1e-4  # mse 0.01 -> 20 dB
    mask = torch.zeros(1, 4, 4, 1)
    mask[:, :2] = 1
    b2 = b.clone()
    b2[:, 2:] = 1.0  # errors outside the mask are ignored
    assert abs(psnr(a, b2, mask).item() - 20.0) < 1e-4


def test_regularisers_are_zero_at_rest_and_grow_with_violation():
    assert acap_loss(torch.zeros(10, 3)).item() == 0
    assert acap_loss(torch.ones(10, 3)).item() > 0
    iso = torch.full((10, 3), math.log(0.01))
    assert asap_loss(iso).item() == 0
    needle = iso.clone()
    needle[:, 0] = math.log(0.2)
    assert asap_loss(needle).item() > 0.1


def test_mask_and_part_losses_prefer_the_right_answer():
    mask = (torch.rand(1, 8, 8, 1) > 0.5).float()
    assert mask_loss(mask * 0.98 + 0.01, mask) < mask_loss(1 - mask, mask)
    labels = torch.randint(0, 3, (1, 8, 8))
    good = torch.nn.functional.one_hot(labels, 3).float()
    assert part_loss(good, labels) < part_loss(torch.full((1, 8, 8, 3), 1 / 3), labels)
    assert part_loss(good, torch.full((1, 8, 8), -1)).item() == 0


def test_person_only_ssim_and_l1_ignore_the_backdrop():
    torch.manual_seed(0)
    img = torch.rand(2, 32, 32, 3)
    mask = torch.zeros(2, 32, 32, 1)
    mask[:, 8:24, 8:24] = 1
    worse_outside = img.clone()
    worse_outside[:, :, :3] = 1 - worse_outside[:, :, :3]  # wrong backdrop beyond every window on the person
    assert torch.allclose(ssim(worse_outside, img, mask=mask, reduce=False), torch.ones(2), atol=1e-5)
    assert ssim(worse_outside, img).item() < 0.999  # the whole frame sees it
    assert torch.equal(l1_error(worse_outside, img, mask), torch.zeros(2))
    assert l1_error(worse_outside, img).min() > 0
    worse_inside = img.clone()
    worse_inside[:, 10:20, 10:20] = 0.0
    assert (ssim(worse_inside, img, mask=mask, reduce=False) < 0.9).all()
    assert torch.allclose(l1_error(worse_inside, img, mask), (worse_inside - img).abs().sum((1, 2, 3)) / (16 * 16 * 3))


def test_lpips_is_pluggable_through_a_local_network_file(tmp_path):
    """A tiny stand-in network saved as TorchScript plays the part of the real LPIPS file (whose pretrained
    weights cannot be fetched here): the metric calls it on [-1, 1] images and masks both images for the person."""
    import pytest

    from core.train.lpips import LPIPSMetric

    class FakeLPIPS(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)  # [B, 1, 1, 1] like the lpips package

    path = tmp_path / "lpips.pt"
    torch.jit.script(FakeLPIPS()).save(str(path))
    metric = LPIPSMetric(path)
    a, b = torch.zeros(2, 8, 8, 3), torch.full((2, 8, 8, 3), 0.25)
    assert torch.allclose(metric(a, b), torch.full((2,), 0.5))  # |0.25 - 0| scaled to [-1, 1]
    mask = torch.zeros(2, 8, 8, 1)
    mask[:, :4] = 1
    assert torch.allclose(metric(a, b, mask), torch.full((2,), 0.25))
    with pytest.raises(FileNotFoundError, match="export"):
        LPIPSMetric(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a network")
    with pytest.raises(ValueError, match="TorchScript"):
        LPIPSMetric(tmp_path / "junk.pt")


def test_perceptual_loss_in_one_pass_equals_separate_passes_of_render_and_target():
    """The feature network sees render and target in one batch; the loss and the render's gradient are those of a
    pass over the render and a gradient-free pass over the target."""
    from core.train.losses import PerceptualLoss

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.GELU(), torch.nn.Conv2d(4, 5, 3))
    net.requires_grad_(False)
    features = lambda x: [net[0](x), net(x)]  # noqa: E731  (two feature maps)
    pred = torch.rand(3, 10, 10, 3, requires_grad=True)
    target = torch.rand(3, 10, 10, 3)
    loss = PerceptualLoss(features)(pred, target)
    (grad,) = torch.autograd.grad(loss, pred)
    fp = features(pred.permute(0, 3, 1, 2))
    ft = features(target.permute(0, 3, 1, 2))
    ref = sum(torch.nn.functional.l1_loss(a, b) for a, b in zip(fp, ft, strict=True)) / 2
    (ref_grad,) = torch.autograd.grad(ref, pred)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(grad, ref_grad)
