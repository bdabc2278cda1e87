"""Datasets: the built-in synthetic shapes and readers of class, COCO, VOC and mask folders."""
