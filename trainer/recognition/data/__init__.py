"""Training data for the recognition model: PaddleClas label lists, images, PK batches, augmentation."""
