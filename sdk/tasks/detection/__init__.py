"""Detection: SSDLite head, anchors, box coder, COCO evaluation, training, export."""
