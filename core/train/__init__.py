"""Losses, regularisers, optimisation, the training loop, checkpoints, metrics and evaluation."""
