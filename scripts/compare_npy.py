#!/usr/bin/python3
"""Prints the relative L2 error between a reference .npy and Tessera's output .npy (fails above 1e-4)."""
import sys

import numpy as np

reference, actual = np.load(sys.argv[1]).astype(np.float64), np.load(sys.argv[2]).astype(np.float64)
if reference.shape != actual.shape:
    sys.exit(f"shape mismatch: reference {reference.shape}, tessera {actual.shape}")
error = np.linalg.norm(actual - reference) / max(np.linalg.norm(reference), 1e-30)
print(f"relative L2 error vs PyTorch: {error:.3e} ({'ok' if error < 1e-4 else 'TOO LARGE'})")
sys.exit(0 if error < 1e-4 else 1)
