"""The cluster back end: vectors in Milvus, items, images and metadata in PostgreSQL, files on a shared volume."""

from service.gallery.cluster.gallery import ClusterGallery
from service.gallery.cluster.opening import read_cluster_embedding_space

__all__ = ["ClusterGallery", "read_cluster_embedding_space"]
