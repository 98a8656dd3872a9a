// Tests for FacetStore.
