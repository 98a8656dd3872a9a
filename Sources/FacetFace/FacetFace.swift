// FacetFace: Face pipeline: MMOD detector, shape predictors, face chips, ResNet embedder, mask detection.
