// Tests for FacetImaging.
