// Tests for FacetFace.
