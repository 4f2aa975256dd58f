"""Data sets, the plain-PyTorch training loop, and the Ray Tune trainable that wraps it.

Importing this package is cheap (no torch, no Ray); the names shared with search/ and analysis/ are in contract/.
"""
