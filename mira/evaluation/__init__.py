"""Evaluation: image and geometry metrics, the per-object triplane fit and the checkpoint protocol.

Submodules are imported on use (``mira.evaluation.geometry``, ``.metrics``, ``.fitting``,
``.protocol``) so that importing this package stays cheap.
"""
