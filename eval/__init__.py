"""Metrics with trec_eval semantics, significance tests, and the full-versus-compressed report."""
