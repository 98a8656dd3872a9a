// FacetClient: Client library for applications talking to a Facet coordinator.
