"""Training the main-body detector: COCO data, augmentation, PicoDet losses, SimOTA, COCO AP, EMA, the loop."""
