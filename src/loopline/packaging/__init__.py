"""The model package format: flavors, signatures, the `loopline-model.yaml` manifest and safe loading (no registry)."""
