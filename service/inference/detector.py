"""Main-body detector: PicoDet exports with the PaddleDetection contract (image, [im_shape,] scale_factor → [M, 6])."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from service.box import Box
from service.errors import ModelError
from service.inference.image import RGBImage, normalize, resize
from service.inference.manifest import ModelKind, ModelManifest
from service.inference.session import Session
from service.inference.types import Detection


class Detector:
    """Finds the main objects of an image; boxes come back in original-image pixels, best first."""

    def __init__(self, session: Session, manifest: ModelManifest) -> None:
        if manifest.kind is not ModelKind.detector:
            raise ModelError(f"{manifest.name} is a {manifest.kind.value} model, not a detector")
        self.session = session
        self.manifest = manifest

    def clone(self) -> Detector:
        return Detector(self.session.clone(), self.manifest)

    def detect(self, image: RGBImage) -> list[Detection]:
        feed = self._preprocess(image)
        outputs = self.session.run(feed)
        return self._postprocess(outputs, width=image.shape[1], height=image.shape[0])

    def _preprocess(self, image: RGBImage) -> dict[str, NDArray[np.generic]]:
        resized, (scale_y, scale_x) = resize(image, self.manifest.preprocess)
        return {
            "image": normalize(resized, self.manifest.preprocess)[np.newaxis],
            # im_shape (older exports only) is the RESIZED shape; scale_factor is (y, x): the model divides boxes by it.
            "im_shape": np.array([resized.shape[:2]], dtype=np.float32),
            "scale_factor": np.array([[scale_y, scale_x]], dtype=np.float32),
        }

    def _postprocess(self, outputs: list[NDArray[np.generic]], *, width: int, height: int) -> list[Detection]:
        rows = np.asarray(outputs[0], dtype=np.float32)
        # Exports signal "nothing found" with fewer than 6 values or class -1 rows.
        if rows.size < 6:
            return []
        rows = rows.reshape(-1, 6)
        rows = rows[rows[:, 0] >= 0]
        rows = rows[np.argsort(-rows[:, 1], kind="stable")]
        labels = self.manifest.labels
        detections = []
        for class_id, score, x1, y1, x2, y2 in rows.tolist():
            # PP-ShiTu truncates box coordinates to int; clipping only guards crops against out-of-frame boxes.
            box = Box(
                x1=min(max(int(x1), 0), width),
                y1=min(max(int(y1), 0), height),
                x2=min(max(int(x2), 0), width),
                y2=min(max(int(y2), 0), height),
            )
            label = labels[int(class_id)] if int(class_id) < len(labels) else str(int(class_id))
            detections.append(Detection(box=box, score=float(score), class_id=int(class_id), label=label))
        return detections
