// FacetCluster: Coordinator, matcher and embedder services, shard map, jobs.
