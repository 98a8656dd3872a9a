// FacetIndex: Vector kernels, exact search and the HNSW approximate-nearest-neighbour index.
