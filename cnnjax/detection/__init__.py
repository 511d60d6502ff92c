"""Object detection: box utilities, fixed-size NMS, sliding windows and pyramids, YOLO v1's loss and decoding, mAP."""

from cnnjax.detection.boxes import BOX_FORMATS, box_area, box_convert, box_iou
from cnnjax.detection.metrics import average_precision, mean_average_precision
from cnnjax.detection.nms import batched_nms, nms
from cnnjax.detection.windows import image_pyramid, sliding_window_scores, sliding_windows
from cnnjax.detection.yolo import decode_yolo, detect, yolo_loss, yolo_targets

__all__ = [
    "BOX_FORMATS", "average_precision", "batched_nms", "box_area", "box_convert", "box_iou", "decode_yolo", "detect",
    "image_pyramid", "mean_average_precision", "nms", "sliding_window_scores", "sliding_windows", "yolo_loss",
    "yolo_targets",
]
