// FacetTestSupport: Test fixtures: temporary directories, seeded face-like embeddings, fixture lookup.
