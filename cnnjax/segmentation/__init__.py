"""Semantic segmentation: per-pixel cross-entropy and Dice losses, pixel accuracy and mean IoU.

The models are the zoo's ``unet`` and ``fcn``; ``cnnjax.train`` fits them with ``task="segment"``.
"""

from cnnjax.segmentation.losses import dice_loss, pixel_cross_entropy
from cnnjax.segmentation.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy

__all__ = ["confusion_matrix", "dice_loss", "iou_per_class", "mean_iou", "pixel_accuracy", "pixel_cross_entropy"]
