// Tests for FacetIndex.
