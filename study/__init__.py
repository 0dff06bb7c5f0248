"""Human studies: build a rating or pairwise (2AFC) study from a workspace's outputs, serve it,
and analyse the answers (``bench study create|serve|report``)."""
