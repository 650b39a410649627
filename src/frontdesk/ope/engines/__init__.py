"""Engines that run the per-batch function over a log and add up its sums: local and Spark."""
