"""Report scripts: the figures of the benchmark pages and the blog post, drawn from bench/results/
with fasttd3x.figures' setup. The figures a sweep draws are fasttd3x/figures.py's."""
