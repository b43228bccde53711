"""The core every stage shares: dataset IO, atomic files, the model registry, device choice, domain errors, shared
CLI options. It imports no stage."""
