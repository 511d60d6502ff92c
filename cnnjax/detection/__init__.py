"""Object detection: box utilities, fixed-size NMS, sliding windows and pyramids, YOLO v1's loss and decoding, mAP."""

from cnnjax.detection.boxes import BOX_FORMATS, box_area, box_convert, box_iou
from cnnjax.detection.metrics import average_precision, mean_average_precision
from cnnjax.detection.nms import batched_nms, nms, select_detections
from cnnjax.detection.windows import image_pyramid, multiscale_detect, sliding_window_scores, sliding_windows, window_boxes
from cnnjax.detection.yolo import decode_yolo, detect, yolo_loss, yolo_targets

__all__ = [
    "BOX_FORMATS", "average_precision", "batched_nms", "box_area", "box_convert", "box_iou", "decode_yolo", "detect",
    "image_pyramid", "mean_average_precision", "multiscale_detect", "nms", "select_detections", "sliding_window_scores", "sliding_windows", "window_boxes", "yolo_loss",
    "yolo_targets",
]
