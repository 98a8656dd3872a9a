// FacetStore: LMDB environments, typed tables, encryption at rest, durable partitions.
