"""An example ebmlab plugin: LSGAN (a method), ring4 (a data set) and mean_dist (a metric), registered through
the entry points of this package's pyproject.toml, without a line of ebmlab changed."""
