"""Reliability tier: SIGKILL at random points, concurrent appliers, fuzzing (root)."""
