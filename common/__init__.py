"""Shared building blocks of the face-reenactment monorepo.

Framework-neutral at import time: modules import torch or tensorflow inside the functions
that need them, so `lsr` (TensorFlow) and the PyTorch packages can both use `common`.
"""
