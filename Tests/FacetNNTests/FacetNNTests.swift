// Tests for FacetNN.
