"""The test kit: what the tests, the benchmarks (tests/bench) and the demo share.

lab (network namespaces on the real kernel), pki and webhook (a throwaway CA, a running
`podnat webhook`), controlplane (etcd + kube-apiserver on loopback), cluster and
workloads (a kind cluster and the pods run on it), tools (the pinned kubectl and helm),
paths (the checkout and the cache directory). Programs run from the checkout's root:
`python -m tests.kit.controlplane up`, `python -m tests.kit.demo`.
"""
