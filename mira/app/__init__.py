"""MIRA's web app (Gradio): ``python -m mira.app``.

:mod:`mira.app.runner` does the work per request through the same
:class:`~mira.inference.pipeline.InferencePipeline` as ``test.py``; :mod:`mira.app.ui` builds the page;
:mod:`mira.app.__main__` parses the flags and serves it.
"""

from mira.app.runner import AppRequest, AppResult, AppRunner

__all__ = ["AppRequest", "AppResult", "AppRunner"]
