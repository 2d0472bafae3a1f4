"""Trainer for the PP-ShiTuV2 networks: recognition (PPLCNetV2_base / EfficientNet-Lite0 + BNNeck) and PicoDet-LCNet."""
