"""``mailsmith preview``: a campaign loaded once, every recipient rendered on demand.

:mod:`renderer.serve.session` is the library layer (no HTTP): :class:`PreviewSession`.
:mod:`renderer.serve.explain` gives the explain panel and the matrix;
:mod:`renderer.serve.app` serves them over HTTP (Starlette, uvicorn, watchfiles).
"""
