"""One run: the pipeline's stages, the run-directory lock, provenance and the run's own summary and curves."""
