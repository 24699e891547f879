"""facetrace on a Ray cluster (optional extra ``facetrace[ray]``): the embedded default never imports Ray.

``runtime.connect`` joins a cluster; ``jobs`` runs stored-video segments as Ray tasks; ``indexing`` fans
batches of images out to Ray workers for ``facetrace index --ray``.
"""
