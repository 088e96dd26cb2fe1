"""Published weights of other projects, converted to MIRA and checked against their own code.

* :mod:`mira.pretrained.openlrm`: OpenLRM v1.1 (config and weight mapping, strict).
* :mod:`mira.pretrained.triposr`: TripoSR (``config.yaml`` + ``model.ckpt``; config and weight mapping, strict).
* :mod:`mira.pretrained.verify`: ``python -m mira.pretrained.verify`` compares a converted
  checkpoint with the outputs of the reference implementation (docs/PRETRAINED.md).
"""
