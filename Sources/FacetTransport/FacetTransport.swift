// FacetTransport: ZeroMQ sockets, poller, CURVE, framing.
