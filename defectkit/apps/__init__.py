"""Applications built on the toolkit: the labelling app and the inference daemon.

Each lives in its own subpackage and is imported on use, so the daemon never pulls in
the labelling app's web stack (or torch) and vice versa.
"""
