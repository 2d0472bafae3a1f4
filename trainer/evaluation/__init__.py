"""``shitu eval``: the service's own pipeline measured on a generated benchmark (``shitu data synth`` layout).

Three tracks: the recognizer alone on ground-truth crops, the detector alone, and the whole pipeline end to end
with open-set rejection. Metrics come from ``trainer.recognition.metrics`` (retrieval) and
``trainer.detection.evaluate`` (COCO AP); images, models and the gallery go through the service code unchanged.
"""
