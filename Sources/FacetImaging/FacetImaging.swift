// FacetImaging: Decoded RGB images, JPEG/PNG codecs with size limits, EXIF orientation, resize, pyramid, affine warp, alpha blending.
