"""Training the recognition model: label-list data, PK batches, CE + triplet losses, retrieval metrics, the loop."""
