"""Population-based training (``search.mode`` pbt or pb2): the population, its scheduler and its lineage."""
