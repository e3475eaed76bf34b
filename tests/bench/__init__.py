"""`make bench`: apply (kernel, cold start, API path, validation), admission, cluster.

Run from the checkout's root: `python -m tests.bench.apply`, `python -m tests.bench.admission`,
`python -m tests.bench.cluster` (or hack/bench.sh, all three).
"""
