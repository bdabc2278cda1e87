"""Weight-sharing supernet (Once-for-All): one network trained once, every sub-network inherits it.

``subnet`` (pure Python): a space read as elastic dimensions, and ``Subnet``, one point of it.
``ops``, ``block``, ``network``: the Keras supernet — ``Supernet.set_active``, ``Supernet.extract``.
``data``, ``train``, ``checkpoint``: progressive shrinking under a ``tf.distribute`` strategy,
resumable. ``evaluate``: batch-norm recalibration and held-out top-1 of one sub-network.
``measured``: sub-networks measured into the checkpoint and the accuracy predictor fitted on them.
``genome``, ``predictor``, ``evolution`` (numpy only): sub-networks as array rows, their latency in
one pass, Once-for-All's MLP accuracy predictor and evolutionary search.
``specialize``: the specializer's task for a supernet (search, inherit, recalibrate, measure);
``finetune``: optional fine-tuning of the extracted model. ``ofa`` imports Once-for-All's published
PyTorch supernets, read by ``torch_file`` (a restricted unpickler: tensors only, no PyTorch).
Importing this package does not import TensorFlow; the modules that build or train do.
"""
from edgetailor.supernet.subnet import ElasticSpace, Subnet

__all__ = ["ElasticSpace", "Subnet"]
