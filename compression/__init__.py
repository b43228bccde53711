"""EffiR compression (importance, depth, width, retrieval fine-tuning) and the methods it is compared with."""
