// FacetClassify: One-vs-rest linear SVMs through LIBLINEAR, class and sample weights, calibration.
