"""Pre-send quality gates: ``mailsmith check`` (lint) and its findings."""
