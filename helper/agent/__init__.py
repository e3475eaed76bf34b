"""`podnat agent`: the node agent that keeps each managed pod's redirects live."""
