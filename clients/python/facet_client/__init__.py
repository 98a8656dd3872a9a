"""Python client for a Facet coordinator (ZeroMQ DEALER + protobuf, see docs/wire.md)."""
from .client import FacetClient, FacetError, PROTOCOL_VERSION
from . import facet_pb2

__all__ = ["FacetClient", "FacetError", "PROTOCOL_VERSION", "facet_pb2"]
