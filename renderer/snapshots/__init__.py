"""Snapshots of a campaign's emails: see :mod:`renderer.snapshots.runner` and docs/ci.md."""
