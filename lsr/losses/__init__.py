"""LSR losses: per-example terms (`losses`), VGG19 / VGG-Face perceptual losses (`vgg_loss`)
and `ModelLosses`, which weights and combines them for both model types."""

from lsr.losses.model_losses import ModelLosses, average_losses

__all__ = ["ModelLosses", "average_losses"]
