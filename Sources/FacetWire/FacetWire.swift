// FacetWire: Generated protobuf messages (proto/facet.proto) and message helpers.
