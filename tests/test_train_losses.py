"""Loss functions behave as their definitions say."""

import math

import torch

from core.train.losses import acap_loss, asap_loss, mask_loss, part_loss, psnr, ssim


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
