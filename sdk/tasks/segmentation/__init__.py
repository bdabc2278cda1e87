"""Segmentation: LR-ASPP head, training, export."""
