"""`podnat agent`: one per node, keeping each managed pod's redirects live in its netns."""
