"""Image files: read and write PNG, JPEG and TIFF as numpy arrays with named axes ("TZYXC")."""

from ._files import IMAGE_SUFFIXES, list_images, read_image, write_image

__all__ = ["IMAGE_SUFFIXES", "list_images", "read_image", "write_image"]
