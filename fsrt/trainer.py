"""One FSRT training/validation step: keypoints and expressions, rendering and all losses (fact sheet §8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import InputError
from fsrt.model.keypoint_detector import AntiAliasInterpolation2d


def statistical_regularization(e_src_augm, e_drv, e_src_augm2, e_drv_crop, cfg) -> dict[str, torch.Tensor]:
    """The original's VICReg-like terms on expression vectors [B, S, E] / [B, E].

    As coded there: the 'variance' is the std across the features of each vector, and the
    'covariance' sums the squared covariance matrix including its diagonal.
    """
    dim = e_drv.shape[-1]
    first = torch.cat([e_src_augm, e_drv[:, None]], 1).reshape(-1, dim)
    second = torch.cat([e_src_augm2, e_drv_crop[:, None]], 1).reshape(-1, dim)
    variance = sum(F.relu(1 - torch.sqrt(e.var(dim=-1) + 1e-4)).sum() / e.shape[0] for e in (first, second))
    covariance = sum((torch.cov(e.T) ** 2).sum() / dim for e in (first, second))
    invariance = 0.5 * (((e_src_augm - e_src_augm2) ** 2).mean() + ((e_drv - e_drv_crop) ** 2).mean())
    return {
        "invariance": invariance,
        "variance": variance,
        "covariance": covariance,
        "reg_loss": cfg["invariance_loss_weight"] * invariance
        + cfg["variance_loss_weight"] * variance
        + cfg["covariance_loss_weight"] * covariance,
    }


def check_scales(cfg: dict) -> None:
    """`training.scales` are the image-pyramid levels (1 or 1/n) the discriminator can read; each
    `discriminator.scales` entry needs its level, as in the original (there a KeyError)."""
    levels = cfg["training"]["scales"]
    for scale in levels:
        if not (isinstance(scale, (int, float)) and 0 < scale <= 1 and abs(1 / scale - round(1 / scale)) < 1e-6):
            raise InputError(f"training.scales: {scale!r} is not supported (use 1 or 1/n: 1, 0.5, 0.25, ...)")
    if cfg["discriminator"]["use_disc"]:
        for scale in cfg["discriminator"]["scales"]:
            if not any(abs(scale - level) < 1e-9 for level in levels):
                raise InputError(
                    f"discriminator.scales: {scale!r} is not in training.scales {levels} (its image-pyramid level)"
                )


class FSRTTrainer:
    """Holds the (possibly DDP-wrapped) parts, all on `device`; every network is called once per
    pass so DDP's gradient hooks see each parameter once per backward. Batches arrive from the
    loader on the CPU and are moved here; the coin-flip generator stays on the CPU so the draws do
    not depend on the device."""

    def __init__(
        self,
        cfg: dict,
        encoder,
        decoder,
        expression_encoder,
        kp_detector,
        discriminator=None,
        perceptual=None,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        self.cfg, self.train_cfg = cfg, cfg["training"]
        self.device = torch.device(device)
        self.encoder, self.decoder, self.expression_encoder = encoder, decoder, expression_encoder
        self.kp_detector, self.discriminator, self.perceptual = kp_detector, discriminator, perceptual
        self.phase2_start = self.train_cfg["iters_in_phase1"]
        self.phase3_start = self.phase2_start + self.train_cfg["iters_in_phase2"]
        self.use_disc = cfg["discriminator"]["use_disc"] and discriminator is not None
        check_scales(cfg)
        # The discriminator sees the prediction and target at each of its scales: scale 1 as is,
        # scale 1/n blurred and subsampled (it resizes its input back to 256² itself).
        self.pyramid = {
            str(s): (lambda x: x) if s == 1 else AntiAliasInterpolation2d(3, s).to(self.device)
            for s in cfg["discriminator"]["scales"]
        }
        self.generator = torch.Generator().manual_seed(seed)  # the per-step coin flips, checkpointed

    @torch.no_grad()
    def _keypoints(self, images: torch.Tensor):
        """The frozen detector, outside autograd as in the original: nothing flows back into it."""
        return self.kp_detector(images)

    def _kp_expression(self, images: torch.Tensor):
        """Frames [N, 3, H, W] -> keypoints [N, K, 2] and expressions [N, E] in one encoder call."""
        keypoints, maps = self._keypoints(images)
        heatmap = maps["heatmap"].flatten(1, 2)
        return keypoints, self.expression_encoder(maps["feature_map"], heatmap)

    def _to_device(self, data: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in data.items()}

    def compute_loss(self, data: dict, it: int, generator: torch.Generator):
        data = self._to_device(data)
        src_augm, src_augm2 = data["input_images_augm"], data["input_images_augm2"]
        batch, nsrc, _, height, width = src_augm.shape
        driving = data["target_image_augm2"] if torch.rand(1, generator=generator) < 0.5 else data["target_image_augm"]
        frames = torch.cat([src_augm2, driving[:, None], src_augm, data["target_image_augm3_crop"][:, None]], 1)
        keypoints, expressions = self._kp_expression(frames.flatten(0, 1))
        keypoints = keypoints.view(batch, 2 * (nsrc + 1), *keypoints.shape[1:])
        expressions = expressions.view(batch, 2 * (nsrc + 1), -1)
        kp_src, kp_drv = keypoints[:, :nsrc], keypoints[:, nsrc]
        e_src_augm2, e_drv = expressions[:, :nsrc], expressions[:, nsrc]
        e_src_augm, e_drv_crop = expressions[:, nsrc + 1 : -1], expressions[:, -1]
        if self.cfg["data"]["simulate_out_of_frame_motion"]:
            # Keypoints of the uncropped frames, mapped into the crop's coordinates.
            uncropped = torch.cat(
                [data["input_images_augm2_uncropped"], data["target_image_augm2_uncropped"][:, None]], 1
            )
            kps, _ = self._keypoints(uncropped.flatten(0, 1))
            kps = kps.view(batch, nsrc + 1, *kps.shape[1:])
            kps = (kps + data["kp_shift"][:, None, None]) * data["kp_scale"][:, None, None]
            kp_src, kp_drv = kps[:, :nsrc], kps[:, nsrc]

        terms = statistical_regularization(e_src_augm, e_drv, e_src_augm2, e_drv_crop, self.train_cfg)
        own = torch.rand(batch, generator=generator) < 0.25  # 25 %: the uncropped driving expression
        expression = torch.where(own[:, None].to(self.device), e_drv, e_drv_crop)
        z = self.encoder(src_augm, kp_src, data["input_pos"], e_src_augm2)
        pred = self.decoder(z, data["target_pos"], kp_drv, expression)
        if data["remaining_idxs"].shape[1] > 0:
            with torch.no_grad():
                rest = self.decoder(z.detach(), data["remaining_pos"], kp_drv, expression)
            order = torch.cat([data["sampled_idxs"], data["remaining_idxs"]], 1)
            both = torch.cat([pred, rest], 1)
            pred = torch.zeros_like(both).scatter(1, order[..., None].expand(-1, -1, 3), both)
        target = data["target_pixels_augm"]
        mse = ((pred - target) ** 2).mean((1, 2))
        terms["mse"] = mse.detach()
        loss = self.train_cfg["mse_loss_weight"] * mse.mean()
        disc_inputs = None
        if it >= self.phase2_start:
            pred_image = pred.view(batch, height, width, 3).permute(0, 3, 1, 2)
            target_image = target.view(batch, height, width, 3).permute(0, 3, 1, 2)
            if sum(self.train_cfg["perceptual_loss_weight"]) > 0:
                if self.perceptual is None:
                    raise InputError("the perceptual loss needs VGG19 weights: pass --vgg PATH")
                terms["perceptual"] = self.perceptual(pred_image, target_image)
                loss = loss + terms["perceptual"]
            if it >= self.phase3_start and self.use_disc:
                disc_inputs = (pred_image, target_image, kp_drv.detach())
                if it >= self.phase3_start + self.train_cfg["disc_warmup_iters"]:
                    loss = loss + self._generator_gan(pred_image, target_image, kp_drv.detach(), terms)
        if self.train_cfg["statistical_regularization"]:
            loss = loss + terms["reg_loss"]
        return loss, terms, disc_inputs

    def _discriminate(self, fake, real, kp, detach: bool) -> list[tuple]:
        """One discriminator call on [fake; real] at all its scales (InstanceNorm is per sample, so
        batching is exact) -> per scale (fake features, real features, fake map, real map)."""
        both = torch.cat([fake.detach() if detach else fake, real])
        out = self.discriminator(
            {f"prediction_{s}": down(both) for s, down in self.pyramid.items()}, kp=torch.cat([kp, kp])
        )
        half = fake.shape[0]
        return [
            (
                [f[:half] for f in out[f"feature_maps_{s}"]],
                [f[half:] for f in out[f"feature_maps_{s}"]],
                out[f"prediction_map_{s}"][:half],
                out[f"prediction_map_{s}"][half:],
            )
            for s in self.pyramid
        ]

    def _generator_gan(self, fake, real, kp, terms) -> torch.Tensor:
        """LSGAN and feature-matching terms, each summed over the discriminator's scales."""
        gan = matching = fake.new_zeros(())
        for feats_fake, feats_real, map_fake, _ in self._discriminate(fake, real, kp, detach=False):
            gan = gan + self.train_cfg["generator_gan_loss_weight"] * ((1 - map_fake) ** 2).mean()
            matching = matching + sum(
                w * (a - b).abs().mean()
                for w, a, b in zip(self.train_cfg["generator_gan_feature_matching"], feats_real, feats_fake)
                if w != 0
            )
        terms["gen_gan"], terms["feature_matching"] = gan, matching
        return gan + matching

    def train_step(self, data: dict, it: int, optimizer, optimizer_disc=None) -> dict[str, float]:
        for module in (self.encoder, self.decoder, self.expression_encoder):
            module.train()
        optimizer.zero_grad()
        loss, terms, disc_inputs = self.compute_loss(data, it, self.generator)
        loss.backward()
        optimizer.step()
        if disc_inputs is not None:
            optimizer_disc.zero_grad()  # also drops what the generator loss left in D
            terms["disc_gan"] = sum(
                self.train_cfg["discriminator_gan_loss_weight"] * ((1 - map_real) ** 2 + map_fake**2).mean()
                for _, _, map_fake, map_real in self._discriminate(*disc_inputs, detach=True)
            )
            terms["disc_gan"].backward()
            optimizer_disc.step()
        return {"loss": loss.item(), **{k: float(v.detach().mean()) for k, v in terms.items()}}

    @torch.no_grad()
    def eval_step(self, data: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-sample metrics at the phase-2 setting (no GAN): psnr, mse and the loss terms."""
        for module in (self.encoder, self.decoder, self.expression_encoder):
            module.eval()
        _, terms, _ = self.compute_loss(data, self.phase2_start, generator)
        return {"psnr": -10 * torch.log10(terms["mse"]), **{k: v.reshape(-1) for k, v in terms.items()}}
