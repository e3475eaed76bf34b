"""`podnat agent`: one per node, applying pods' redirects in their network namespaces."""
