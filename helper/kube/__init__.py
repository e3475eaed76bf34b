"""A small Kubernetes client on the standard library: list, watch, patch, post.

The `kubernetes` package costs ~43 MB of RSS; a node agent on every node keeps
to the few REST calls it needs (../README.md, "Agent mode").
"""
