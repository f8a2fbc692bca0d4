"""Evaluating, recording and watching a saved policy."""
