"""effir: EffiR-compressed LLM dense retrievers, from corpus to nDCG@10."""

__version__ = "0.1.0"
