// FacetNN: Tensors and CNN layers on OpenBLAS (conv, affine, relu, pools, fc) and the reader of dlib's serialisation format.
